import type { KeyObject } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { generateSigningKeyPair, privateKeyPem, publicKeyPem, toPrivateKey } from '@flotilla/contracts';

export interface HubSigningKey {
  privateKey: KeyObject;
  publicKeyPem: string;
  location: string;
}

/**
 * The Ed25519 key that signs every desired-state envelope: the file named by
 * FLOTILLA_SIGNING_KEY, else `<home>/signing-key.pem`, generated once (0600).
 * Agents pin its public half at enrolment, so it must survive restarts.
 */
export async function loadSigningKey(home: string, file: string | null): Promise<HubSigningKey> {
  const location = file ?? path.join(home, 'signing-key.pem');
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
  return { privateKey, publicKeyPem: publicKeyPem(privateKey), location };
}
