import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';
import { formatIssues } from './issues.js';
import { EnvelopeSchema, type Envelope, type UnsignedEnvelope } from './messages.js';

/**
 * Signing and checking of the desired-state envelope (DESIGN.md section 6).
 * The signature is Ed25519 over the RFC 8785 canonical JSON of
 * `{v, spoke, generation, issuedAt, payload}`.
 *
 * Verification works on the raw decoded JSON, not on the schema-parsed value:
 * the schema fills defaults (e.g. `resources.gpu`), and the signature covers
 * exactly what the hub sent.
 */

export type EnvelopeRejectReason = 'Malformed' | 'BadSignature' | 'WrongSpoke' | 'StaleGeneration';

export type VerifyResult =
  | { ok: true; envelope: Envelope; /** Same generation as the last applied: a redelivery, nothing to do. */ duplicate: boolean }
  | { ok: false; reason: EnvelopeRejectReason; message: string };

export interface VerifyExpectation {
  /** The spoke this agent was enrolled as. */
  spoke: string;
  /** Generation of the last envelope applied (0 before any). */
  lastAppliedGeneration: number;
}

export class SigningKeyError extends Error {
  override readonly name = 'SigningKeyError';
}

const ED25519_SIGNATURE_BYTES = 64;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export interface SigningKeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export function generateSigningKeyPair(): SigningKeyPair {
  return generateKeyPairSync('ed25519');
}

function requireEd25519(key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new SigningKeyError(`${what} must be an Ed25519 key, got ${key.asymmetricKeyType ?? key.type}`);
  }
  return key;
}

/** Accepts a KeyObject or a PKCS#8 PEM; throws `SigningKeyError` unless it is an Ed25519 private key. */
export function toPrivateKey(key: KeyObject | string): KeyObject {
  if (typeof key !== 'string') {
    if (key.type !== 'private') throw new SigningKeyError(`signing key must be a private key, got a ${key.type} key`);
    return requireEd25519(key, 'signing key');
  }
  try {
    return requireEd25519(createPrivateKey(key), 'signing key');
  } catch (err) {
    if (err instanceof SigningKeyError) throw err;
    throw new SigningKeyError(`signing key is not a readable private key PEM: ${(err as Error).message}`);
  }
}

/**
 * Accepts a public KeyObject, a private one (its public half is used) or an
 * SPKI PEM; throws `SigningKeyError` unless it is Ed25519.
 */
export function toPublicKey(key: KeyObject | string): KeyObject {
  if (typeof key !== 'string') {
    return requireEd25519(key.type === 'private' ? createPublicKey(key) : key, 'public key');
  }
  try {
    return requireEd25519(createPublicKey(key), 'public key');
  } catch (err) {
    if (err instanceof SigningKeyError) throw err;
    throw new SigningKeyError(`public key is not a readable PEM: ${(err as Error).message}`);
  }
}

/** SPKI PEM of the public half of `key` (what the hub hands out at enrolment). */
export function publicKeyPem(key: KeyObject | string): string {
  return toPublicKey(key).export({ type: 'spki', format: 'pem' }).toString();
}

/** PKCS#8 PEM of a private key (how the hub stores its signing key). */
export function privateKeyPem(key: KeyObject | string): string {
  return toPrivateKey(key).export({ type: 'pkcs8', format: 'pem' }).toString();
}

function signingInput(
  fields: { v: unknown; spoke: unknown; generation: unknown; issuedAt: unknown; payload: unknown },
  canonicalPayload?: string,
): Buffer {
  const { v, spoke, generation, issuedAt, payload } = fields;
  if (canonicalPayload === undefined) return Buffer.from(canonicalJson({ v, spoke, generation, issuedAt, payload }), 'utf8');
  // RFC 8785 orders the keys generation, issuedAt, payload, spoke, v (UTF-16 order) and
  // serialises integers and strings as JSON.stringify does; the payload is spliced in as given.
  return Buffer.from(
    `{"generation":${canonicalJson(generation)},"issuedAt":${canonicalJson(issuedAt)},"payload":${canonicalPayload},"spoke":${canonicalJson(spoke)},"v":${canonicalJson(v)}}`,
    'utf8',
  );
}

/**
 * Signs an envelope. The unsigned envelope is checked against the schema first
 * (throws naming the offending paths), so the hub can never publish something
 * its agents must reject as malformed. The fields are signed as given.
 */
export function signEnvelope(
  unsigned: UnsignedEnvelope,
  privateKey: KeyObject | string,
  /** `canonicalJson(unsigned.payload)` when the caller already has it (the hub hashes every payload first). */
  canonicalPayload?: string,
): Envelope {
  const key = toPrivateKey(privateKey);
  const { v, spoke, generation, issuedAt, payload } = unsigned;
  const fields = { v, spoke, generation, issuedAt, payload };
  const placeholder = 'A'.repeat(88);
  const checked = EnvelopeSchema.safeParse({ ...fields, sig: placeholder });
  if (!checked.success) {
    throw new Error(`signEnvelope: envelope violates the schema: ${formatIssues(checked.error.issues)}`);
  }
  const sig = sign(null, signingInput(fields, canonicalPayload), key).toString('base64');
  return { ...fields, sig };
}

/**
 * Checks a decoded desired-state message against the pinned hub key and what
 * this agent expects. Never throws on bad input; a bad `publicKey` is a
 * configuration error and throws `SigningKeyError`.
 *
 * Order: shape, then signature (so a forgery is reported as such whatever it
 * claims), then spoke name, then generation.
 */
export function verifyEnvelope(raw: unknown, publicKey: KeyObject | string, expect: VerifyExpectation): VerifyResult {
  const key = toPublicKey(publicKey);
  const parsed = EnvelopeSchema.safeParse(raw);
  if (!parsed.success) {
    return { ok: false, reason: 'Malformed', message: `envelope violates the schema: ${formatIssues(parsed.error.issues)}` };
  }
  const fields = raw as Envelope; // strict schema: raw has exactly the envelope keys
  const sig = fields.sig;
  const sigBytes = BASE64.test(sig) ? Buffer.from(sig, 'base64') : null;
  // Node's base64 decoder is lenient (missing padding, stray bits); only the
  // canonical encoding is accepted so that one signature has one spelling.
  if (sigBytes === null || sigBytes.length !== ED25519_SIGNATURE_BYTES || sigBytes.toString('base64') !== sig) {
    return {
      ok: false,
      reason: 'BadSignature',
      message: `envelope generation ${fields.generation}: sig is not a canonical base64 Ed25519 signature (${ED25519_SIGNATURE_BYTES} bytes)`,
    };
  }
  let valid: boolean;
  try {
    valid = verify(null, signingInput(fields), key, sigBytes);
  } catch {
    valid = false; // e.g. a value canonical JSON cannot represent; such an envelope cannot have been signed
  }
  if (!valid) {
    return {
      ok: false,
      reason: 'BadSignature',
      message: `envelope generation ${fields.generation} for spoke "${fields.spoke}": signature does not verify against the pinned hub key`,
    };
  }
  const envelope = parsed.data;
  if (envelope.spoke !== expect.spoke) {
    return {
      ok: false,
      reason: 'WrongSpoke',
      message: `envelope is addressed to spoke "${envelope.spoke}", this agent is "${expect.spoke}"`,
    };
  }
  if (envelope.generation < expect.lastAppliedGeneration) {
    return {
      ok: false,
      reason: 'StaleGeneration',
      message: `envelope generation ${envelope.generation} is older than the applied generation ${expect.lastAppliedGeneration}`,
    };
  }
  return { ok: true, envelope, duplicate: envelope.generation === expect.lastAppliedGeneration };
}
