import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../config/config.js';
import { TlsConfigError, loadHubTls } from './hub-tls.js';

describe('hub TLS material', () => {
  let home: string;
  beforeEach(async () => {
    home = await mkdtemp(path.join(os.tmpdir(), 'flotilla-tls-'));
  });
  afterEach(async () => {
    await rm(home, { recursive: true, force: true });
  });

  const config = (env: Record<string, string> = {}) => loadConfig({ FLOTILLA_HOME: home, ...env }, home, false);

  it('generates a CA and a server certificate it signed once, keeps them, and issues the server certificate again for a new name only', async () => {
    const first = await loadHubTls(config());
    expect(first.source).toBe('generated');
    const leaf = new X509Certificate(first.certificatePem);
    const ca = new X509Certificate(first.caCertificatePem!);
    expect(ca.ca).toBe(true);
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.checkHost('localhost')).toBe('localhost');
    expect(leaf.checkIP('127.0.0.1')).toBe('127.0.0.1');
    for (const f of ['ca-key.pem', 'server-key.pem']) expect(((await stat(path.join(home, 'tls', f))).mode & 0o777).toString(8)).toBe('600');

    expect((await loadHubTls(config())).certificatePem).toBe(first.certificatePem);
    const renamed = await loadHubTls(config({ FLOTILLA_TLS_SAN: 'hub.example,10.1.2.3' }));
    expect(renamed.certificatePem).not.toBe(first.certificatePem);
    expect(renamed.caCertificatePem).toBe(first.caCertificatePem);
    const again = new X509Certificate(renamed.certificatePem);
    expect(again.checkHost('hub.example')).toBe('hub.example');
    expect(again.checkIP('10.1.2.3')).toBe('10.1.2.3');
  });

  it('uses FLOTILLA_TLS_CERT/KEY (and FLOTILLA_TLS_CA for agents) when given, refusing a key that is not the certificate\'s', async () => {
    await loadHubTls(config());
    const t = path.join(home, 'tls');
    const provided = await loadHubTls(
      config({ FLOTILLA_TLS_CERT: path.join(t, 'server.pem'), FLOTILLA_TLS_KEY: path.join(t, 'server-key.pem'), FLOTILLA_TLS_CA: path.join(t, 'ca.pem') }),
    );
    expect(provided).toMatchObject({ source: 'provided', caCertificatePem: await readFile(path.join(t, 'ca.pem'), 'utf8') });
    await expect(loadHubTls(config({ FLOTILLA_TLS_CERT: path.join(t, 'server.pem'), FLOTILLA_TLS_KEY: path.join(t, 'ca-key.pem') }))).rejects.toThrow(TlsConfigError);
    expect(() => config({ FLOTILLA_TLS_CERT: path.join(t, 'server.pem') })).toThrow(ConfigError);
  });
});
