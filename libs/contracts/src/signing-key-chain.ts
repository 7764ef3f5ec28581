import { type KeyObject, sign, verify } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';
import { type VerifyExpectation, type VerifyResult, toPrivateKey, toPublicKey, verifyEnvelope } from './envelope.js';
import { type KeyAnnouncement, KeyAnnouncementSchema } from './messages.js';

/**
 * Hub signing-key rotation (docs/operations.md). The hub announces each new
 * key under the key before it; envelopes signed by the new key carry the
 * announcements. An agent follows them from the key it pinned, so it moves to
 * the new key without enrolling again, and from then on refuses the old one.
 * A link that the agent's current key did not sign is ignored: a stolen
 * retired key cannot lead an agent that has moved on anywhere.
 */

const PURPOSE = 'flotilla.hub-signing-key';
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function announcementInput(publicKeyPem: string): Buffer {
  return Buffer.from(canonicalJson({ purpose: PURPOSE, publicKey: publicKeyPem }), 'utf8');
}

const spki = (key: KeyObject): Buffer => key.export({ type: 'spki', format: 'der' });

/** Announces `next` (a public or private key, or a PEM) under the `previous` private key. */
export function announceSigningKey(next: KeyObject | string, previous: KeyObject | string): KeyAnnouncement {
  const publicKey = toPublicKey(next).export({ type: 'spki', format: 'pem' }).toString();
  return { publicKey, sig: sign(null, announcementInput(publicKey), toPrivateKey(previous)).toString('base64') };
}

export interface FollowedKey {
  key: KeyObject;
  /** SPKI PEM of `key`. */
  publicKeyPem: string;
  /** True when `key` is not the pinned key: the agent should pin it once an envelope it signed verifies. */
  rotated: boolean;
}

/** The newest key reachable from `pinned` through announcements each signed by the key before it. */
export function followKeyChain(chain: unknown, pinned: KeyObject | string): FollowedKey {
  let current = toPublicKey(pinned);
  let currentDer = spki(current);
  let rotated = false;
  const links = Array.isArray(chain) ? chain.slice(0, 16) : [];
  for (const raw of links) {
    const link = KeyAnnouncementSchema.safeParse(raw);
    if (!link.success || !BASE64.test(link.data.sig)) continue;
    let next: KeyObject;
    try {
      next = toPublicKey(link.data.publicKey);
    } catch {
      continue;
    }
    const nextDer = spki(next);
    if (nextDer.equals(currentDer)) continue;
    let signed = false;
    try {
      signed = verify(null, announcementInput(link.data.publicKey), current, Buffer.from(link.data.sig, 'base64'));
    } catch {
      signed = false;
    }
    if (!signed) continue;
    current = next;
    currentDer = nextDer;
    rotated = true;
  }
  return { key: current, publicKeyPem: current.export({ type: 'spki', format: 'pem' }).toString(), rotated };
}

/**
 * verifyEnvelope, following the envelope's key announcements from the pinned
 * key first. On success `hubKey` is the key that verified it; when
 * `hubKey.rotated`, the caller pins it (after storing the envelope).
 */
export function verifyEnvelopeFollowingRotation(
  raw: unknown,
  pinned: KeyObject | string,
  expect: VerifyExpectation,
): VerifyResult & { hubKey: FollowedKey } {
  const chain = raw !== null && typeof raw === 'object' ? (raw as { keys?: unknown }).keys : undefined;
  const hubKey = followKeyChain(chain, pinned);
  return { ...verifyEnvelope(raw, hubKey.key, expect), hubKey };
}
