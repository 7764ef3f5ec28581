import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { CliError, EXIT } from '../exit-codes.js';

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Reads a CA certificate file (`--ca`, FLOTILLA_CA) and adds its certificates
 * to this process's trusted set, beside the system's: every https:// request
 * the CLI makes then verifies the hub against it. Certificates are never
 * left unchecked. Returns the PEM text (null without a file).
 */
export function trustCa(file: string | undefined): string | null {
  if (!file) return null;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read the CA certificate ${file} (--ca / FLOTILLA_CA): ${(err as Error).message}`, EXIT.usage);
  }
  const pems = text.match(PEM_CERTIFICATE) ?? [];
  if (pems.length === 0) throw new CliError(`${file} (--ca / FLOTILLA_CA) holds no PEM certificate`, EXIT.usage);
  for (const pem of pems) {
    try {
      new X509Certificate(pem);
    } catch (err) {
      throw new CliError(`${file} (--ca / FLOTILLA_CA) holds a certificate that cannot be read: ${(err as Error).message}`, EXIT.usage);
    }
  }
  tls.setDefaultCACertificates([...tls.getCACertificates('default'), ...pems]);
  return pems.join('\n') + '\n';
}
