import { type DataSource, IsNull } from 'typeorm';
import { secretMatches } from '../common/secrets.js';
import { SpokeEntity } from '../database/entities/spoke.entity.js';

export type BrokerIdentity = { kind: 'hub' } | { kind: 'spoke'; spoke: string; username: string };

/**
 * Who may connect to the embedded broker: the hub itself (a credential made
 * at each start and never stored) or an enrolled, unrevoked spoke whose MQTT
 * client id is its own name and whose password matches the stored hash.
 */
export class BrokerAuthority {
  constructor(
    private readonly ds: DataSource,
    readonly hubUsername: string,
    private readonly hubPassword: string,
  ) {}

  async authenticate(clientId: string, username: string | undefined, password: Buffer | undefined): Promise<BrokerIdentity | null> {
    if (!username || !password) return null;
    const secret = password.toString('utf8');
    if (username === this.hubUsername) {
      return secret === this.hubPassword && clientId.startsWith('flotilla-hub') ? { kind: 'hub' } : null;
    }
    const spoke = await this.ds.getRepository(SpokeEntity).findOne({
      where: { mqttUsername: username, revokedAt: IsNull() },
      select: { name: true, credentialHash: true, mqttUsername: true },
    });
    if (!spoke || spoke.name !== clientId || !secretMatches(secret, spoke.credentialHash)) return null;
    return { kind: 'spoke', spoke: spoke.name, username };
  }
}
