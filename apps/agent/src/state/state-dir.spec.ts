import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSigningKeyPair, publicKeyPem } from '@flotilla/contracts';
import {
  type AgentCredentials,
  StateFileError,
  appliedEnvelopePath,
  credentialsPath,
  hasCredentials,
  readAppliedEnvelope,
  readCredentials,
  writeAppliedEnvelope,
  writeCredentials,
} from './state-dir.js';

const credentials = (): AgentCredentials => ({
  hubUrl: 'http://hub.example:8080',
  spoke: 'site-17',
  labels: { region: 'eu' },
  mqtt: { url: 'mqtt://hub.example:1883', clientId: 'spoke-site-17', username: 'site-17', password: 's3cret' },
  hubPublicKey: publicKeyPem(generateSigningKeyPair().publicKey),
  enrolledAt: '2025-01-02T03:04:05.000Z',
});

describe('state directory', () => {
  let dir: string;
  beforeEach(async () => {
    dir = join(await mkdtemp(join(tmpdir(), 'flotilla-state-')), 'nested', 'state');
  });
  afterEach(async () => {
    await rm(join(dir, '..', '..'), { recursive: true, force: true });
  });

  it('writes credentials readable by the owner only, in a directory it creates, and reads them back', async () => {
    const written = credentials();
    expect(await hasCredentials(dir)).toBe(false);
    await writeCredentials(dir, written);
    expect(await hasCredentials(dir)).toBe(true);
    expect((await stat(credentialsPath(dir))).mode & 0o777).toBe(0o600);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect(await readCredentials(dir)).toEqual(written);
  });

  it('leaves no temporary files behind after a write', async () => {
    await writeCredentials(dir, credentials());
    await writeAppliedEnvelope(dir, '{"v":1}');
    await writeAppliedEnvelope(dir, '{"v":2}');
    expect((await readdir(dir)).sort()).toEqual(['applied-envelope.json', 'credentials.json']);
  });

  it('stores the applied envelope verbatim with mode 0600 and replaces it whole', async () => {
    expect(await readAppliedEnvelope(dir)).toBeNull();
    const bytes = '{ "generation" : 1,  "spacing": "kept" }';
    await writeAppliedEnvelope(dir, bytes);
    expect(await readFile(appliedEnvelopePath(dir), 'utf8')).toBe(bytes);
    expect((await stat(appliedEnvelopePath(dir))).mode & 0o777).toBe(0o600);
    expect((await readAppliedEnvelope(dir))?.raw).toEqual({ generation: 1, spacing: 'kept' });
  });

  it('names the file and the enrol command when credentials are missing', async () => {
    const err = await readCredentials(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateFileError);
    expect(err).toMatchObject({ problem: 'Missing', file: credentialsPath(dir) });
    expect((err as Error).message).toContain(`no credentials at ${credentialsPath(dir)}`);
    expect((err as Error).message).toContain('flotilla agent enroll');
  });

  it('names the file and says how to start over when credentials are not JSON', async () => {
    await writeCredentials(dir, credentials());
    await writeFile(credentialsPath(dir), '{"hubUrl": ');
    await expect(readCredentials(dir)).rejects.toThrow(
      new RegExp(`${credentialsPath(dir)} is not valid JSON .*to start over, delete`),
    );
  });

  it('names the file and the bad fields when credentials do not match the schema', async () => {
    await writeCredentials(dir, credentials());
    await writeFile(credentialsPath(dir), JSON.stringify({ ...credentials(), spoke: 'Bad Name', mqtt: {} }));
    const err = (await readCredentials(dir).catch((e: unknown) => e)) as StateFileError;
    expect(err.problem).toBe('Corrupt');
    expect(err.message).toContain(credentialsPath(dir));
    expect(err.message).toContain('spoke:');
    expect(err.message).toContain('mqtt.url');
  });

  it('refuses a pinned hub key that is not an Ed25519 public key', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    await writeCredentials(dir, { ...credentials(), hubPublicKey: rsa });
    await expect(readCredentials(dir)).rejects.toThrow(/hubPublicKey is not a usable Ed25519 public key \(it is a rsa key/);
    await writeCredentials(dir, { ...credentials(), hubPublicKey: 'nonsense' });
    await expect(readCredentials(dir)).rejects.toThrow(StateFileError);
  });

  it('names the file when the applied envelope is corrupt', async () => {
    await writeAppliedEnvelope(dir, '{"torn');
    await expect(readAppliedEnvelope(dir)).rejects.toThrow(new RegExp(`${appliedEnvelopePath(dir)} is not valid JSON`));
  });

  it('refuses to write credentials that do not match the schema', async () => {
    await expect(writeCredentials(dir, { ...credentials(), hubUrl: 'ftp://x' })).rejects.toThrow(/hubUrl/);
    expect(await hasCredentials(dir)).toBe(false);
  });
});
