import type { KeyObject } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type KeyAnnouncement, generateSigningKeyPair, privateKeyPem, publicKeyPem, toPrivateKey } from '@flotilla/contracts';

/** Announcements an envelope carries at most (agents follow up to 16). */
export const KEY_CHAIN_LENGTH = 16;

/**
 * The Ed25519 key that signs every desired-state envelope, and the
 * announcements of its rotations (newest last) that envelopes carry so agents
 * can follow. One object shared by the envelope publisher and enrolment;
 * RotateSigningKey replaces its key in place.
 */
export class HubSigningKey {
  constructor(
    public privateKey: KeyObject,
    public publicKeyPem: string,
    readonly location: string,
    public chain: KeyAnnouncement[] = [],
  ) {}

  /** Where a rotation writes the new key before it is committed (see loadSigningKey). */
  get nextLocation(): string {
    return `${this.location}.next`;
  }

  replace(privateKey: KeyObject, announcement: KeyAnnouncement): void {
    this.privateKey = privateKey;
    this.publicKeyPem = publicKeyPem(privateKey);
    this.chain = [...this.chain, announcement].slice(-KEY_CHAIN_LENGTH);
  }
}

/**
 * The file named by FLOTILLA_SIGNING_KEY, else `<home>/signing-key.pem`,
 * generated once (0600). Agents pin its public half at enrolment, so it must
 * survive restarts. `committed` says whether a key left at `<file>.next` by a
 * rotation that stopped half-way was recorded (then it replaces the file) or
 * not (then it is removed).
 */
export async function loadSigningKey(
  home: string,
  file: string | null,
  committed: (publicKeyPem: string) => Promise<boolean> = async () => false,
): Promise<HubSigningKey> {
  const location = file ?? path.join(home, 'signing-key.pem');
  const next = await readFile(`${location}.next`, 'utf8').catch(() => null);
  if (next !== null) {
    let adopt = false;
    try {
      adopt = await committed(publicKeyPem(toPrivateKey(next)));
    } catch {
      adopt = false;
    }
    if (adopt) await rename(`${location}.next`, location);
    else await rm(`${location}.next`, { force: true });
  }
  let pem: string;
  try {
    pem = await readFile(location, 'utf8');
  } catch (err) {
    if (file || (err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new Error(`cannot read the signing key ${location} (FLOTILLA_SIGNING_KEY): ${(err as Error).message}`);
    }
    pem = privateKeyPem(generateSigningKeyPair().privateKey);
    await writeFile(location, pem, { mode: 0o600, flag: 'wx' });
  }
  let privateKey: KeyObject;
  try {
    privateKey = toPrivateKey(pem);
  } catch (err) {
    throw new Error(`${location} (FLOTILLA_SIGNING_KEY): ${(err as Error).message}`);
  }
  return new HubSigningKey(privateKey, publicKeyPem(privateKey), location);
}
