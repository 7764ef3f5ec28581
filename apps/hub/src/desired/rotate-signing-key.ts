import { createHash } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import { announceSigningKey, generateSigningKeyPair, privateKeyPem, publicKeyPem, toPublicKey } from '@flotilla/contracts';
import type { DataSource } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import type { FleetTriggers } from '../controllers/fleet-triggers.js';
import { SigningKeyRotationEntity } from '../database/entities/signing-key-rotation.entity.js';
import type { EnvelopePublisher } from './envelope-publisher.js';
import { type HubSigningKey, KEY_CHAIN_LENGTH } from './signing-key.js';

/** The hub signing key as the API shows it. */
export interface SigningKeyView {
  publicKey: string;
  /** `sha256:` of the public key's DER (SPKI), to compare with an agent's credentials.json. */
  fingerprint: string;
  rotations: number;
  lastRotatedAt: string | null;
}

/** Serialises rotations across hub processes sharing one database. */
const ROTATION_LOCK = 0x666c7400 + 1;

export const fingerprintOf = (pem: string): string =>
  `sha256:${createHash('sha256').update(toPublicKey(pem).export({ type: 'spki', format: 'der' })).digest('hex')}`;

/**
 * Rotates the hub signing key without re-enrolling agents: a new Ed25519 key
 * is announced under (signed by) the current one, recorded with an audit
 * event, written in place of the key file, and every spoke's current desired
 * state is published again signed by the new key, carrying the announcements.
 * An agent accepts the new key through the announcement its pinned key signed,
 * pins it, and from then on refuses envelopes signed by the old key.
 *
 * Crash safety: the new key is written beside the old one (`<file>.next`)
 * before the commit; at start, a `.next` key the database recorded replaces
 * the file and any other is removed (loadSigningKey).
 */
export class RotateSigningKey {
  private running: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly ds: DataSource,
    private readonly audit: AuditService,
    private readonly key: HubSigningKey,
    private readonly envelopes: EnvelopePublisher,
    private readonly triggers: FleetTriggers,
  ) {}

  execute(actor: string, requestId: string | null): Promise<SigningKeyView> {
    const run = this.running.then(() => this.rotate(actor, requestId));
    this.running = run.catch(() => undefined);
    return run;
  }

  async view(): Promise<SigningKeyView> {
    const [stats] = (await this.ds.query(`SELECT count(*)::int AS n, max(rotated_at) AS last FROM signing_key_rotations`)) as { n: number; last: Date | null }[];
    return {
      publicKey: this.key.publicKeyPem,
      fingerprint: fingerprintOf(this.key.publicKeyPem),
      rotations: stats?.n ?? 0,
      lastRotatedAt: stats?.last ? new Date(stats.last).toISOString() : null,
    };
  }

  private async rotate(actor: string, requestId: string | null): Promise<SigningKeyView> {
    const previousPem = this.key.publicKeyPem;
    const next = generateSigningKeyPair().privateKey;
    const nextPem = publicKeyPem(next);
    const announcement = announceSigningKey(next, this.key.privateKey);
    await rm(this.key.nextLocation, { force: true });
    await writeFile(this.key.nextLocation, privateKeyPem(next), { mode: 0o600, flag: 'wx' });
    try {
      await this.ds.transaction(async (em) => {
        await em.query(`SELECT pg_advisory_xact_lock($1)`, [ROTATION_LOCK]);
        await em.insert(SigningKeyRotationEntity, { publicKey: nextPem, previousPublicKey: previousPem, sig: announcement.sig, rotatedBy: actor });
        await this.audit.record(em, {
          actor,
          action: 'signing-key.rotate',
          target: 'signing-key/hub',
          before: { fingerprint: fingerprintOf(previousPem) },
          after: { fingerprint: fingerprintOf(nextPem) },
          details: { previous: fingerprintOf(previousPem), next: fingerprintOf(nextPem) },
          requestId,
        });
      });
    } catch (err) {
      await rm(this.key.nextLocation, { force: true });
      throw err;
    }
    await rename(this.key.nextLocation, this.key.location);
    this.key.replace(next, announcement);
    // Every spoke's current generation again, signed by the new key (spoke sync publishes what this process has not).
    this.envelopes.forgetPublished();
    const spokes: { name: string }[] = await this.ds.query(`SELECT name FROM spokes WHERE revoked_at IS NULL`);
    for (const s of spokes) this.triggers.syncSpoke(s.name);
    return this.view();
  }
}

/**
 * The announcements envelopes carry: the latest rotations, oldest first, when
 * they lead to the key in use; none when the key file was replaced by hand
 * (agents must then be enrolled again, and the start says so).
 */
export async function loadKeyChain(ds: DataSource, key: HubSigningKey): Promise<{ ok: boolean }> {
  const rows = await ds.getRepository(SigningKeyRotationEntity).find({ order: { id: 'DESC' }, take: KEY_CHAIN_LENGTH });
  if (rows.length === 0) return { ok: true };
  rows.reverse();
  if (fingerprintOf(rows[rows.length - 1]!.publicKey) !== fingerprintOf(key.publicKeyPem)) return { ok: false };
  key.chain = rows.map((r) => ({ publicKey: r.publicKey, sig: r.sig }));
  return { ok: true };
}

/** Whether a rotation recorded `publicKeyPem` (a `.next` key left by a stop between commit and rename). */
export const rotationCommitted =
  (ds: DataSource) =>
  async (publicKeyPemText: string): Promise<boolean> =>
    ds.getRepository(SigningKeyRotationEntity).exists({ where: { publicKey: publicKeyPemText } });
