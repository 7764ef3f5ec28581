// @peculiar/x509 resolves its algorithm providers through tsyringe, which needs the Reflect metadata API first.
import 'reflect-metadata';
import { X509Certificate, createPrivateKey, KeyObject, randomBytes, webcrypto } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import type { HubConfig } from '../config/config.js';

/** The certificate and key the hub serves HTTPS and MQTT over TLS with, and the CA agents pin. */
export interface HubTls {
  /** PEM chain the listeners present (leaf first). */
  certificatePem: string;
  keyPem: string;
  /** The CA certificate handed to agents at enrolment (null: a publicly trusted certificate was brought, agents use their system store). */
  caCertificatePem: string | null;
  /** Where the CA certificate is, for `--ca` / FLOTILLA_CA (null when none). */
  caFile: string | null;
  /** `generated` under $FLOTILLA_HOME/tls, or `provided` by FLOTILLA_TLS_CERT/FLOTILLA_TLS_KEY. */
  source: 'generated' | 'provided';
}

export class TlsConfigError extends Error {
  override readonly name = 'TlsConfigError';
}

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** A generated server certificate is replaced at start when it ends within this long. */
const RENEW_BEFORE_MS = 30 * DAY_MS;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/**
 * Loads the hub's TLS material: FLOTILLA_TLS_CERT/FLOTILLA_TLS_KEY (and
 * FLOTILLA_TLS_CA, the CA handed to agents) when given; else a CA and a
 * server certificate generated at first start under `<home>/tls` (private
 * keys 0600). The generated server certificate is issued again at start when
 * it is missing, close to its end, or does not name every host the hub is
 * reached by (localhost, this host's name, FLOTILLA_PUBLIC_URL, FLOTILLA_TLS_SAN).
 */
export async function loadHubTls(config: HubConfig): Promise<HubTls> {
  const t = config.tls;
  if (t.certFile && t.keyFile) {
    const certificatePem = await readPem(t.certFile, 'FLOTILLA_TLS_CERT');
    const keyPem = await readPem(t.keyFile, 'FLOTILLA_TLS_KEY');
    let leaf: X509Certificate;
    try {
      leaf = new X509Certificate(certificatePem);
    } catch (err) {
      throw new TlsConfigError(`FLOTILLA_TLS_CERT ${t.certFile} is not a PEM certificate: ${(err as Error).message}`);
    }
    let key: KeyObject;
    try {
      key = createPrivateKey(keyPem);
    } catch (err) {
      throw new TlsConfigError(`FLOTILLA_TLS_KEY ${t.keyFile} is not a PEM private key: ${(err as Error).message}`);
    }
    if (!leaf.checkPrivateKey(key)) throw new TlsConfigError(`FLOTILLA_TLS_KEY ${t.keyFile} is not the key of the certificate in FLOTILLA_TLS_CERT ${t.certFile}`);
    const caCertificatePem = t.caFile ? await readPem(t.caFile, 'FLOTILLA_TLS_CA') : null;
    return { certificatePem, keyPem, caCertificatePem, caFile: t.caFile, source: 'provided' };
  }
  const dir = path.join(config.home, 'tls');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const ca = await ensureCa(dir);
  const names = serverNames(config);
  const files = { cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server-key.pem') };
  const existing = await readOptional(files.cert);
  if (existing === null || !(await serverCertificateFits(existing, ca.cert, names))) {
    const { certPem, keyPem } = await issueServerCertificate(ca, names);
    await writeAtomic(files.key, keyPem, 0o600);
    await writeAtomic(files.cert, certPem, 0o644);
  }
  return {
    certificatePem: await readFile(files.cert, 'utf8'),
    keyPem: await readFile(files.key, 'utf8'),
    caCertificatePem: ca.pem,
    caFile: ca.file,
    source: 'generated',
  };
}

/**
 * A server certificate for another service (an external broker, say) from the
 * hub's generated CA under `<home>/tls` (made if absent), so that agents,
 * which pin that CA, trust it. docs/operations.md shows the openssl way.
 */
export async function issueFromHubCa(home: string, names: string[]): Promise<{ certPem: string; keyPem: string; caPem: string }> {
  const dir = path.join(home, 'tls');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = await ensureCa(dir);
  return { ...(await issueServerCertificate(ca, names)), caPem: ca.pem };
}

/** Host names and addresses the generated server certificate must name. */
export function serverNames(config: Pick<HubConfig, 'publicUrl' | 'tls'>): string[] {
  const names = new Set(['localhost', '127.0.0.1', '::1', os.hostname().toLowerCase()]);
  if (config.publicUrl) names.add(new URL(config.publicUrl).hostname.replace(/^\[|\]$/g, '').toLowerCase());
  for (const n of config.tls.extraNames) names.add(n.toLowerCase());
  return [...names].filter((n) => n !== '');
}

interface Ca {
  file: string;
  pem: string;
  cert: x509.X509Certificate;
  key: CryptoKey;
}

async function ensureCa(dir: string): Promise<Ca> {
  const file = path.join(dir, 'ca.pem');
  const keyFile = path.join(dir, 'ca-key.pem');
  let pem = await readOptional(file);
  let keyPem = await readOptional(keyFile);
  if (pem === null || keyPem === null) {
    const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `CN=Flotilla hub CA ${randomBytes(4).toString('hex')}`,
      notBefore: new Date(now - DAY_MS),
      notAfter: new Date(now + 10 * 365 * DAY_MS),
      signingAlgorithm: ALGORITHM,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    keyPem = KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }).toString();
    pem = cert.toString('pem') + '\n';
    await writeAtomic(keyFile, keyPem, 0o600);
    await writeAtomic(file, pem, 0o644);
  }
  const cert = new x509.X509Certificate(pem);
  let key: CryptoKey;
  try {
    key = createPrivateKey(keyPem).toCryptoKey(ALGORITHM, false, ['sign']);
  } catch (err) {
    throw new TlsConfigError(`${keyFile} is not the hub CA's P-256 private key (${(err as Error).message}); delete ${dir} to generate a new CA (agents must then be enrolled again)`);
  }
  return { file, pem, cert, key };
}

async function serverCertificateFits(pem: string, ca: x509.X509Certificate, names: string[]): Promise<boolean> {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch {
    return false;
  }
  const issuer = new X509Certificate(ca.toString('pem'));
  if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) return false;
  if (new Date(cert.validTo).getTime() - Date.now() < RENEW_BEFORE_MS) return false;
  return names.every((n) => (isIP(n) ? cert.checkIP(n) !== undefined : cert.checkHost(n) !== undefined));
}

async function issueServerCertificate(ca: Ca, names: string[]): Promise<{ certPem: string; keyPem: string }> {
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: 'CN=flotilla-hub',
    issuer: ca.cert.subject,
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + 397 * DAY_MS),
    signingAlgorithm: ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(names.map((n) => (isIP(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n }))),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    ],
  });
  // The chain: leaf then CA, so clients that pin the CA and those that only know the leaf both verify.
  return {
    certPem: cert.toString('pem') + '\n' + ca.pem,
    keyPem: KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/** A positive 128-bit serial number (RFC 5280: at most 20 octets, positive). */
function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString('hex');
}

async function readPem(file: string, variable: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new TlsConfigError(`cannot read ${variable} ${file}: ${(err as Error).message}`);
  }
}

async function readOptional(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Written under a temporary name with its final mode, then renamed: never a moment readable by others or half-written. */
async function writeAtomic(file: string, text: string, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, text, { mode, flag: 'wx' });
  await chmod(tmp, mode);
  await rename(tmp, file);
}
