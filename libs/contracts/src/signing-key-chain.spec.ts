import { sampleUnsigned } from './__fixtures__/desired.js';
import { generateSigningKeyPair, publicKeyPem, signEnvelope } from './envelope.js';
import { announceSigningKey, followKeyChain, verifyEnvelopeFollowingRotation } from './signing-key-chain.js';

const wire = (value: unknown): unknown => JSON.parse(JSON.stringify(value));
const expect17 = { spoke: 'site-17', lastAppliedGeneration: 0 };

describe('signing-key rotation: announcements agents follow', () => {
  const k1 = generateSigningKeyPair();
  const k2 = generateSigningKeyPair();
  const k3 = generateSigningKeyPair();
  const a12 = announceSigningKey(k2.publicKey, k1.privateKey);
  const a23 = announceSigningKey(k3.publicKey, k2.privateKey);

  it('an agent pinned to the old key accepts an envelope signed by the new key announced under the old one', () => {
    const env = { ...signEnvelope(sampleUnsigned(), k2.privateKey), keys: [a12] };
    const r = verifyEnvelopeFollowingRotation(wire(env), k1.publicKey, expect17);
    expect(r.ok).toBe(true);
    expect(r.hubKey.rotated).toBe(true);
    expect(r.hubKey.publicKeyPem).toBe(publicKeyPem(k2.publicKey));
  });

  it('follows several rotations made while the agent was away, and nothing when it already has the newest key', () => {
    expect(followKeyChain([a12, a23], k1.publicKey).publicKeyPem).toBe(publicKeyPem(k3.publicKey));
    expect(followKeyChain([a12, a23], k2.publicKey).publicKeyPem).toBe(publicKeyPem(k3.publicKey));
    const current = followKeyChain([a12, a23], k3.publicKey);
    expect(current).toMatchObject({ rotated: false, publicKeyPem: publicKeyPem(k3.publicKey) });
  });

  it('ignores an announcement the pinned key did not sign: an envelope signed by an unannounced key is refused', () => {
    const intruder = generateSigningKeyPair();
    const forged = announceSigningKey(intruder.publicKey, generateSigningKeyPair().privateKey);
    const env = { ...signEnvelope(sampleUnsigned(), intruder.privateKey), keys: [forged] };
    const r = verifyEnvelopeFollowingRotation(wire(env), k1.publicKey, expect17);
    expect(r).toMatchObject({ ok: false, reason: 'BadSignature' });
    expect(r.hubKey.rotated).toBe(false);
  });

  it('once an agent moved to the new key, a retired key cannot lead it anywhere, nor sign for it', () => {
    const intruder = generateSigningKeyPair();
    // Someone holding the retired k1 announces their own key under it.
    const viaRetired = announceSigningKey(intruder.publicKey, k1.privateKey);
    const env = { ...signEnvelope(sampleUnsigned(), intruder.privateKey), keys: [a12, viaRetired] };
    expect(verifyEnvelopeFollowingRotation(wire(env), k2.publicKey, expect17)).toMatchObject({ ok: false, reason: 'BadSignature' });
    const oldSigned = signEnvelope(sampleUnsigned(), k1.privateKey);
    expect(verifyEnvelopeFollowingRotation(wire(oldSigned), k2.publicKey, expect17)).toMatchObject({ ok: false, reason: 'BadSignature' });
  });

  it('an announcement whose signature was tampered with, or that is malformed, is skipped', () => {
    const tampered = { ...a12, sig: announceSigningKey(k3.publicKey, k1.privateKey).sig };
    expect(followKeyChain([tampered], k1.publicKey).rotated).toBe(false);
    expect(followKeyChain([{ publicKey: 'nope', sig: '!!' }, 42, null], k1.publicKey).rotated).toBe(false);
    expect(followKeyChain('not a list', k1.publicKey).rotated).toBe(false);
  });
});
