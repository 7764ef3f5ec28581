import 'reflect-metadata';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { DataSource } from 'typeorm';
import { generateSigningKeyPair, privateKeyPem, publicKeyPem } from '@flotilla/contracts';
import { AuditService } from '../../apps/hub/src/audit/audit.service.js';
import { BOOTSTRAP_TOKEN_NAME, ensureBootstrapAdmin } from '../../apps/hub/src/auth/bootstrap-admin.js';
import { hashSecret } from '../../apps/hub/src/common/secrets.js';
import { createDataSource, runMigrations } from '../../apps/hub/src/database/data-source.js';
import { SigningKeyRotationEntity } from '../../apps/hub/src/database/entities/signing-key-rotation.entity.js';
import { initialiseCluster } from '../../apps/hub/src/database/postgres-server.js';
import { rotationCommitted } from '../../apps/hub/src/desired/rotate-signing-key.js';
import { loadSigningKey } from '../../apps/hub/src/desired/signing-key.js';
import type { DomainError } from '../../apps/hub/src/errors/domain-error.js';
import { RotateApiToken } from '../../apps/hub/src/tokens/rotate-api-token.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

/**
 * Issue 12, finding 10 and deliverable 9: no secret file is ever readable by
 * other users (the embedded Postgres superuser password while initdb reads
 * it included), the bootstrap admin token can be rotated (shown once, stored
 * hashed, audited, not set back at the next start), and a signing-key
 * rotation that stopped half-way is finished or undone at start.
 */
describe('security: secrets on disk (issue 12, finding 10)', () => {
  let dir: string;
  let db: TestDatabase;
  let ds: DataSource;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'flotilla-sec-secrets-'));
    db = await createTestDatabase();
    ds = createDataSource(db.url);
    await ds.initialize();
    await runMigrations(ds);
  });

  afterAll(async () => {
    await ds?.destroy();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  test('initdb reads the superuser password from a file only its owner can read, even under umask 000, and it is gone afterwards', async () => {
    // A stand-in initdb that records what the real one would see: the password file, its directory and their modes.
    const seen = path.join(dir, 'initdb-saw.txt');
    const fake = path.join(dir, 'initdb');
    await writeFile(
      fake,
      `#!/bin/sh\nfor a in "$@"; do case "$a" in --pwfile=*) f="\${a#--pwfile=}";; esac; done\n` +
        `printf '%s %s %s\\n' "$f" "$(stat -c %a "$f")" "$(stat -c %a "$(dirname "$f")")" > ${seen}\n`,
    );
    await chmod(fake, 0o755);
    const previous = process.umask(0o000);
    try {
      await initialiseCluster({
        binaries: { dir, initdb: fake, postgres: '/nonexistent', version: 'test' },
        dataDir: path.join(dir, 'data'),
        runAs: null,
        user: 'postgres',
        password: 'secret-password-123',
        durable: false,
        log: () => undefined,
      });
    } finally {
      process.umask(previous);
    }
    const [file, fileMode, dirMode] = (await readFile(seen, 'utf8')).trim().split(' ');
    expect({ fileMode, dirMode }).toEqual({ fileMode: '600', dirMode: '700' });
    await expect(stat(file!)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(stat(path.dirname(file!))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('flotilla tokens rotate: the bootstrap admin token gets a new secret once, stored hashed and audited; the old file is removed and a restart keeps the new one', async () => {
    const home = await mkdtemp(path.join(dir, 'home-'));
    await ensureBootstrapAdmin(ds, home, null);
    const tokenFile = path.join(home, 'admin-token');
    const old = (await readFile(tokenFile, 'utf8')).trim();
    expect(((await stat(tokenFile)).mode & 0o777).toString(8)).toBe('600');

    const rotation = new RotateApiToken(ds, new AuditService(), { home, fromEnv: false });
    const { token } = await rotation.execute(BOOTSTRAP_TOKEN_NAME, 'token:ops', 'req-1');
    expect(token).not.toBe(old);
    const [row] = await ds.query(`SELECT token_hash FROM api_tokens WHERE name = $1`, [BOOTSTRAP_TOKEN_NAME]);
    expect(row.token_hash).toBe(hashSecret(token));
    expect(JSON.stringify(row)).not.toContain(token);
    await expect(stat(tokenFile)).rejects.toMatchObject({ code: 'ENOENT' });
    const [audit] = await ds.query(`SELECT actor, action, target, request_id FROM audit_events WHERE action = 'api-token.rotate' ORDER BY id DESC LIMIT 1`);
    expect(audit).toEqual({ actor: 'token:ops', action: 'api-token.rotate', target: `api-token/${BOOTSTRAP_TOKEN_NAME}`, request_id: 'req-1' });

    // The next start neither writes the old secret back nor generates another one.
    const restarted = await ensureBootstrapAdmin(ds, home, null);
    expect(restarted.location).toMatch(/^rotated/);
    const [after] = await ds.query(`SELECT token_hash FROM api_tokens WHERE name = $1`, [BOOTSTRAP_TOKEN_NAME]);
    expect(after.token_hash).toBe(hashSecret(token));
    await expect(stat(tokenFile)).rejects.toMatchObject({ code: 'ENOENT' });

    // A bootstrap token that FLOTILLA_ADMIN_TOKEN sets is changed there, not here.
    const fromEnv = new RotateApiToken(ds, new AuditService(), { home, fromEnv: true });
    await expect(fromEnv.execute(BOOTSTRAP_TOKEN_NAME, 'token:ops', null)).rejects.toMatchObject({ status: 409, code: 'bootstrap_token_from_env' } satisfies Partial<DomainError>);
    await expect(rotation.execute('no-such-token', 'token:ops', null)).rejects.toMatchObject({ status: 404 });
  });

  test('a signing-key rotation stopped between writing the new key and recording it is undone at start; one stopped after recording it is finished', async () => {
    const home = await mkdtemp(path.join(dir, 'key-'));
    const first = await loadSigningKey(home, null, rotationCommitted(ds));
    expect(((await stat(first.location)).mode & 0o777).toString(8)).toBe('600');

    // Not recorded: the stray key is removed and the old one stays.
    await writeFile(`${first.location}.next`, privateKeyPem(generateSigningKeyPair().privateKey), { mode: 0o600 });
    const undone = await loadSigningKey(home, null, rotationCommitted(ds));
    expect(undone.publicKeyPem).toBe(first.publicKeyPem);
    await expect(stat(`${first.location}.next`)).rejects.toMatchObject({ code: 'ENOENT' });

    // Recorded: the new key replaces the old one.
    const next = generateSigningKeyPair().privateKey;
    await writeFile(`${first.location}.next`, privateKeyPem(next), { mode: 0o600 });
    await ds.getRepository(SigningKeyRotationEntity).insert({ publicKey: publicKeyPem(next), previousPublicKey: first.publicKeyPem, sig: 'x', rotatedBy: 'test' });
    const finished = await loadSigningKey(home, null, rotationCommitted(ds));
    expect(finished.publicKeyPem).toBe(publicKeyPem(next));
    await expect(stat(`${first.location}.next`)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(((await stat(first.location)).mode & 0o777).toString(8)).toBe('600');
  });
});
