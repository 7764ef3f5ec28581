import type { Logger } from 'pino';
import type { DataSource } from 'typeorm';
import { presenceTopic } from '@flotilla/contracts';
import type { Reconciler } from '../controllers/controller.js';
import type { EnvelopePublisher } from '../desired/envelope-publisher.js';
import type { HubPublisher } from '../mqtt/hub-publisher.js';
import type { BrokerProvisioner } from './broker-provisioner.js';
import type { EmbeddedBroker } from './embedded-broker.js';

/** Key of a broker-side username (external brokers): `user:<username>`. */
const USER = 'user:';

/**
 * Keeps the broker's idea of who may connect equal to the spokes table. Keys
 * are spoke names (after a revocation) and `user:<name>` for usernames an
 * external broker knows. A revoked or unknown spoke loses its broker
 * credentials, its live session and its retained topics; an active spoke whose
 * credentials the broker lost is reported (its password is stored only as a
 * hash, so it must enrol again). Runs at start and every resync, so a crash
 * between a revocation's commit and the broker call leaves nothing working.
 */
export class BrokerCredentialsReconciler implements Reconciler {
  readonly name = 'broker-credentials';

  constructor(
    private readonly ds: DataSource,
    private readonly provisioner: BrokerProvisioner,
    private readonly broker: EmbeddedBroker | null,
    private readonly publisher: HubPublisher,
    private readonly envelopes: EnvelopePublisher,
    private readonly hubUsername: string,
    private readonly log: Logger,
  ) {}

  async listKeys(): Promise<string[]> {
    const active: { name: string; mqtt_username: string }[] = await this.ds.query(
      `SELECT name, mqtt_username FROM spokes WHERE revoked_at IS NULL`,
    );
    const activeNames = new Set(active.map((a) => a.name));
    const activeUsers = new Set(active.map((a) => a.mqtt_username));
    const keys: string[] = [];
    const known = await this.provisioner.listSpokeUsernames();
    if (known) {
      for (const u of known) if (!activeUsers.has(u)) keys.push(`${USER}${u}`);
      const missing = [...activeUsers].filter((u) => !known.includes(u));
      if (missing.length) {
        this.log.warn({ spokes: active.filter((a) => missing.includes(a.mqtt_username)).map((a) => a.name).slice(0, 20), count: missing.length },
          'the broker has no credentials for these enrolled spokes; their passwords are stored hashed only, so each must enrol again');
      }
    }
    if (this.broker) {
      for (const id of this.broker.connectedClientIds()) if (!activeNames.has(id) && !id.startsWith('flotilla-hub')) keys.push(id);
    }
    // Revoked in the last day: their retained topics may still be on the broker.
    const revoked: { name: string }[] = await this.ds.query(
      `SELECT DISTINCT name FROM spokes WHERE revoked_at > now() - interval '1 day' AND name NOT IN (SELECT name FROM spokes WHERE revoked_at IS NULL)`,
    );
    keys.push(...revoked.map((r) => r.name));
    return [...new Set(keys)];
  }

  async reconcile(key: string): Promise<void> {
    if (key.startsWith(USER)) return this.reconcileUser(key.slice(USER.length));
    const spoke = key;
    const active: { id: string }[] = await this.ds.query(`SELECT id FROM spokes WHERE name = $1 AND revoked_at IS NULL`, [spoke]);
    if (active.length > 0) return; // enrolled: its credentials are provisioned at enrolment
    const revoked: { mqtt_username: string }[] = await this.ds.query(`SELECT mqtt_username FROM spokes WHERE name = $1 AND revoked_at IS NOT NULL`, [spoke]);
    for (const r of revoked) await this.provisioner.revokeSpoke(spoke, r.mqtt_username);
    if (this.broker?.disconnect(spoke)) this.log.info({ spoke }, 'ended the broker session of a spoke that is not enrolled');
    // Another hub leads: it clears the retained topics (the spoke's credentials are gone already).
    if (!(await this.envelopes.clear(spoke))) return;
    await this.publisher.publish(presenceTopic(spoke), '', { retain: true });
  }

  private async reconcileUser(username: string): Promise<void> {
    if (username === this.hubUsername) return;
    const rows: { name: string; revoked_at: Date | null }[] = await this.ds.query(
      `SELECT name, revoked_at FROM spokes WHERE mqtt_username = $1`,
      [username],
    );
    if (rows.some((r) => r.revoked_at === null)) return;
    // Spoke usernames are `<spoke>.<random>`; an unknown one still names its spoke's role.
    const spoke = rows[0]?.name ?? username.slice(0, username.lastIndexOf('.'));
    if (!spoke) return;
    const enrolledAgain: unknown[] = await this.ds.query(`SELECT 1 FROM spokes WHERE name = $1 AND revoked_at IS NULL`, [spoke]);
    if (enrolledAgain.length > 0) await this.provisioner.revokeCredentials(username);
    else await this.provisioner.revokeSpoke(spoke, username);
    this.log.warn({ spoke, username }, 'removed broker credentials that no enrolled spoke holds');
  }
}
