import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { sampleDeployment, sampleUnsigned } from './__fixtures__/desired.js';
import {
  SigningKeyError,
  generateSigningKeyPair,
  privateKeyPem,
  publicKeyPem,
  signEnvelope,
  toPublicKey,
  verifyEnvelope,
} from './envelope.js';
import type { UnsignedEnvelope } from './messages.js';
import { canonicalJson } from './canonical-json.js';

const hub = generateSigningKeyPair();
const expect17 = { spoke: 'site-17', lastAppliedGeneration: 0 };

/** Serialises and parses back, as the message would travel. */
const wire = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

describe('signEnvelope / verifyEnvelope', () => {
  it('accepts an envelope signed by the pinned key, given as a KeyObject or a PEM', () => {
    const env = signEnvelope(sampleUnsigned(), hub.privateKey);
    const fromObject = verifyEnvelope(wire(env), hub.publicKey, expect17);
    const fromPem = verifyEnvelope(wire(env), publicKeyPem(hub.publicKey), expect17);
    expect(fromObject).toEqual({ ok: true, envelope: env, duplicate: false });
    expect(fromPem.ok).toBe(true);
  });

  it('signs with a PKCS#8 PEM as well as a KeyObject, producing the same signature', () => {
    const a = signEnvelope(sampleUnsigned(), hub.privateKey);
    const b = signEnvelope(sampleUnsigned(), privateKeyPem(hub.privateKey));
    expect(b.sig).toBe(a.sig); // Ed25519 is deterministic
    expect(Buffer.from(a.sig, 'base64')).toHaveLength(64);
  });

  it('verifies over the JSON as sent, so defaults the schema fills in do not break the signature', () => {
    const unsigned = sampleUnsigned();
    const dep = sampleDeployment() as Record<string, unknown>;
    dep.resources = { cpu: '1' }; // gpu left out: the schema defaults it to 0
    unsigned.payload.deployments = [dep as never];
    const env = signEnvelope(unsigned, hub.privateKey);
    const result = verifyEnvelope(wire(env), hub.publicKey, expect17);
    expect(result.ok).toBe(true);
    expect(result.ok && result.envelope.payload.deployments[0]?.resources.gpu).toBe(0);
  });

  it('rejects an envelope signed by another key as BadSignature', () => {
    const other = generateSigningKeyPair();
    const env = signEnvelope(sampleUnsigned(), other.privateKey);
    const result = verifyEnvelope(wire(env), hub.publicKey, expect17);
    expect(result).toMatchObject({ ok: false, reason: 'BadSignature' });
    expect(!result.ok && result.message).toMatch(/does not verify against the pinned hub key/);
  });

  it.each([
    ['not base64', '!!!!'],
    ['too short', Buffer.alloc(10).toString('base64')],
    ['all zeroes', Buffer.alloc(64).toString('base64')],
  ])('rejects a sig that is %s as BadSignature', (_what, sig) => {
    const env = { ...signEnvelope(sampleUnsigned(), hub.privateKey), sig };
    expect(verifyEnvelope(wire(env), hub.publicKey, expect17)).toMatchObject({ ok: false, reason: 'BadSignature' });
  });

  it('rejects a genuine signature spelt with non-canonical base64 padding as BadSignature', () => {
    const env = signEnvelope(sampleUnsigned(), hub.privateKey);
    expect(env.sig.endsWith('==')).toBe(true);
    const result = verifyEnvelope(wire({ ...env, sig: env.sig.slice(0, -1) }), hub.publicKey, expect17);
    expect(result).toMatchObject({ ok: false, reason: 'BadSignature' });
    expect(!result.ok && result.message).toMatch(/canonical base64/);
  });

  it('rejects a genuine envelope for another spoke as WrongSpoke', () => {
    const env = signEnvelope(sampleUnsigned({ spoke: 'site-18' }), hub.privateKey);
    const result = verifyEnvelope(wire(env), hub.publicKey, expect17);
    expect(result).toMatchObject({ ok: false, reason: 'WrongSpoke' });
    expect(!result.ok && result.message).toContain('"site-18"');
  });

  it('rejects a generation below the applied one as StaleGeneration and flags an equal one as a duplicate', () => {
    const env = signEnvelope(sampleUnsigned({ generation: 4 }), hub.privateKey);
    expect(verifyEnvelope(wire(env), hub.publicKey, { spoke: 'site-17', lastAppliedGeneration: 5 })).toMatchObject({
      ok: false,
      reason: 'StaleGeneration',
      message: 'envelope generation 4 is older than the applied generation 5',
    });
    expect(verifyEnvelope(wire(env), hub.publicKey, { spoke: 'site-17', lastAppliedGeneration: 4 })).toMatchObject({
      ok: true,
      duplicate: true,
    });
    expect(verifyEnvelope(wire(env), hub.publicKey, { spoke: 'site-17', lastAppliedGeneration: 3 })).toMatchObject({
      ok: true,
      duplicate: false,
    });
  });

  it.each([
    ['null', null],
    ['a string', 'envelope'],
    ['an array', []],
    ['an envelope without sig', { ...sampleUnsigned() }],
    ['an envelope with an unknown field', { ...sampleUnsigned(), sig: 'AAAA', extra: 1 }],
    ['generation 0', { ...sampleUnsigned({ generation: 0 }), sig: 'AAAA' }],
    ['protocol version 2', { ...sampleUnsigned(), v: 2, sig: 'AAAA' }],
  ])('rejects %s as Malformed, naming the field', (_what, raw) => {
    const result = verifyEnvelope(raw, hub.publicKey, expect17);
    expect(result).toMatchObject({ ok: false, reason: 'Malformed' });
    expect(!result.ok && result.message).toMatch(/^envelope violates the schema: /);
  });

  it('names the offending path of a malformed payload', () => {
    const raw = wire(signEnvelope(sampleUnsigned(), hub.privateKey)) as { payload: { deployments: { replicas: unknown }[] } };
    raw.payload.deployments[0]!.replicas = { min: 'one', max: 1 };
    const result = verifyEnvelope(raw, hub.publicKey, expect17);
    expect(!result.ok && result.message).toContain('payload.deployments.0.replicas.min');
  });

  it('refuses to sign an envelope that violates the schema, naming the path', () => {
    const bad = { ...sampleUnsigned(), spoke: 'Not A Label' } as UnsignedEnvelope;
    expect(() => signEnvelope(bad, hub.privateKey)).toThrow(/spoke: must be a DNS label/);
  });

  it('throws SigningKeyError for keys that are not Ed25519 or not keys at all', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    expect(() => signEnvelope(sampleUnsigned(), rsa.privateKey)).toThrow(SigningKeyError);
    expect(() => signEnvelope(sampleUnsigned(), hub.publicKey)).toThrow(/must be a private key/);
    expect(() => signEnvelope(sampleUnsigned(), 'not a pem')).toThrow(/not a readable private key PEM/);
    expect(() => verifyEnvelope({}, 'garbage', expect17)).toThrow(/public key is not a readable PEM/);
    expect(() => toPublicKey(rsa.publicKey)).toThrow(/must be an Ed25519 key, got rsa/);
  });

  it('derives the same public PEM from the private and the public key', () => {
    expect(publicKeyPem(hub.privateKey)).toBe(publicKeyPem(hub.publicKey));
    expect(publicKeyPem(hub.publicKey)).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
  });
});

/* ------------------------------------------------------------- properties */

const spokeName = fc.stringMatching(/^[a-z][a-z0-9-]{0,20}[a-z0-9]$/);
const unsignedArb: fc.Arbitrary<UnsignedEnvelope> = fc
  .record({
    spoke: spokeName,
    generation: fc.integer({ min: 1, max: 2 ** 40 }),
    issuedAt: fc.date({ min: new Date('2000-01-01'), max: new Date('2200-01-01'), noInvalidDate: true }).map((d) => d.toISOString()),
    telemetryIntervalSeconds: fc.integer({ min: 5, max: 3600 }),
    deploymentNames: fc.uniqueArray(spokeName, { maxLength: 3 }),
    minReplicas: fc.integer({ min: 0, max: 3 }),
  })
  .map((r) => ({
    v: 1 as const,
    spoke: r.spoke,
    generation: r.generation,
    issuedAt: r.issuedAt,
    payload: {
      settings: { telemetryIntervalSeconds: r.telemetryIntervalSeconds },
      deployments: r.deploymentNames.map((n) => ({ ...sampleDeployment(n), replicas: { min: r.minReplicas, max: 4 } })),
      fineTuneJobs: [],
    },
  }));

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Paths to every leaf (and every array, which can grow) of a JSON value. */
function paths(value: Json, prefix: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(value)) return [prefix, ...value.flatMap((v, i) => paths(v, [...prefix, i]))];
  if (value !== null && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => paths(v, [...prefix, k]));
  return [prefix];
}

/** Returns a copy of `root` where the value at `path` is changed into something different. */
function mutate(root: Json, path: (string | number)[], salt: number): Json {
  const copy = structuredClone(root);
  if (path.length === 0) return { changed: true };
  let parent: Json = copy;
  for (const step of path.slice(0, -1)) parent = (parent as Record<string | number, Json>)[step] as Json;
  const last = path[path.length - 1]!;
  const old = (parent as Record<string | number, Json>)[last] as Json;
  let next: Json;
  if (Array.isArray(old)) next = [...old, old.length > 0 ? structuredClone(old[0]!) : 'x'];
  else if (typeof old === 'string') next = old.length > 0 && salt % 2 === 0 ? old.slice(0, -1) : `${old}a`;
  else if (typeof old === 'number') next = old + 1 + (salt % 3);
  else if (typeof old === 'boolean') next = !old;
  else next = 'x';
  (parent as Record<string | number, Json>)[last] = next;
  return copy;
}

describe('envelope signature properties', () => {
  it('signing with the payload canonical JSON given produces the very signature of the plain path', () => {
    fc.assert(
      fc.property(unsignedArb, (unsigned) => {
        const plain = signEnvelope(unsigned, hub.privateKey);
        const spliced = signEnvelope(unsigned, hub.privateKey, canonicalJson(unsigned.payload));
        expect(spliced.sig).toBe(plain.sig); // Ed25519 is deterministic: equal signatures mean equal signed bytes
        expect(verifyEnvelope(wire(spliced), hub.publicKey, { spoke: unsigned.spoke, lastAppliedGeneration: 0 }).ok).toBe(true);
      }),
    );
  });

  it('a canonical payload that differs from the payload yields an envelope agents reject', () => {
    const unsigned = sampleUnsigned();
    const other = canonicalJson({ ...unsigned.payload, deployments: [] });
    const env = signEnvelope(unsigned, hub.privateKey, other);
    expect(verifyEnvelope(wire(env), hub.publicKey, { spoke: unsigned.spoke, lastAppliedGeneration: 0 })).toMatchObject({ ok: false, reason: 'BadSignature' });
  });

  it('a signed envelope verifies whatever the key order of the received JSON', () => {
    fc.assert(
      fc.property(unsignedArb, (unsigned) => {
        const env = signEnvelope(unsigned, hub.privateKey);
        const reversed = JSON.parse(JSON.stringify(env, (_k, v: unknown) =>
          v !== null && typeof v === 'object' && !Array.isArray(v)
            ? Object.fromEntries(Object.entries(v as object).reverse())
            : v,
        )) as unknown;
        expect(verifyEnvelope(reversed, hub.publicKey, { spoke: unsigned.spoke, lastAppliedGeneration: 0 }).ok).toBe(true);
      }),
      { numRuns: 50 },
    );
  });

  it('any change to any field of a signed envelope makes it fail verification', () => {
    fc.assert(
      fc.property(unsignedArb, fc.nat(), fc.nat(), (unsigned, pick, salt) => {
        const env = wire(signEnvelope(unsigned, hub.privateKey)) as Json;
        const all = paths(env);
        const path = all[pick % all.length]!;
        const tampered = mutate(env, path, salt);
        const result = verifyEnvelope(tampered, hub.publicKey, { spoke: unsigned.spoke, lastAppliedGeneration: 0 });
        expect(result.ok).toBe(false);
        expect(['Malformed', 'BadSignature']).toContain(!result.ok && result.reason);
      }),
      { numRuns: 300 },
    );
  });
});
