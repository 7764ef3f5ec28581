import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { choosePorts, findFreePort, PortInUseError } from '../../apps/hub/src/common/ports.js';
import { loadConfig, type HubConfig } from '../../apps/hub/src/config/config.js';
import { startHub } from '../../apps/hub/src/hub.js';
import { createTestDatabase } from '../support/database.js';

const quiet = { info: () => undefined, warn: () => undefined };

/** Holds a TCP port on 127.0.0.1, as a system Mosquitto holds 1883. */
async function hold(port = 0): Promise<net.Server & { port: number }> {
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => resolve());
  });
  return Object.assign(srv, { port: (srv.address() as net.AddressInfo).port });
}
const release = (srv: net.Server) => new Promise<void>((r) => srv.close(() => r()));

/** A config whose defaults (normally 8080 and 1883) are the given ports, so the test never touches the real defaults. */
function withDefaults(home: string, api: number, mqtt: number, env: Record<string, string> = {}): HubConfig {
  // The TLS listeners' ports follow the same rules (a test below); the others look at the plain ones alone.
  const base = loadConfig({ FLOTILLA_HOME: home, FLOTILLA_API_HOST: '127.0.0.1', FLOTILLA_MQTT_HOST: '127.0.0.1', FLOTILLA_TLS: 'off', ...env });
  return {
    ...base,
    apiPort: base.explicitPorts.api ? base.apiPort : api,
    mqttPort: base.explicitPorts.mqtt ? base.mqttPort : mqtt,
  };
}

describe('ports chosen at the first start are remembered', () => {
  let home: string;
  beforeEach(async () => {
    home = await mkdtemp(path.join(os.tmpdir(), 'flotilla-ports-'));
  });
  afterEach(async () => {
    await rm(home, { recursive: true, force: true });
  });

  test('a taken default moves to the next free port, which later starts keep even once the default is free again', async () => {
    const taken = await hold();
    const apiDefault = await findFreePort();
    let first: { apiPort: number; mqttPort: number };
    try {
      first = await choosePorts(withDefaults(home, apiDefault, taken.port), quiet);
    } finally {
      await release(taken);
    }
    expect(first.apiPort).toBe(apiDefault);
    expect(first.mqttPort).toBeGreaterThan(taken.port);
    expect(JSON.parse(await readFile(path.join(home, 'ports.json'), 'utf8'))).toEqual({ api: apiDefault, mqtt: first.mqttPort });

    const again = await choosePorts(withDefaults(home, apiDefault, taken.port), quiet);
    expect(again).toEqual(first);
  });

  test('a remembered port that is taken stops the start, naming the file that remembers it and the variable to set', async () => {
    const blocker = await hold();
    try {
      await writeFile(path.join(home, 'ports.json'), JSON.stringify({ api: await findFreePort(), mqtt: blocker.port }));
      const err = await choosePorts(withDefaults(home, 1, 2), quiet).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PortInUseError);
      const msg = (err as Error).message;
      expect(msg).toContain(`port ${blocker.port}`);
      expect(msg).toContain(path.join(home, 'ports.json'));
      expect(msg).toContain('FLOTILLA_MQTT_PORT');
    } finally {
      await release(blocker);
    }
  });

  test('a variable wins over the remembered port; a taken one stops the start naming the port and the variable', async () => {
    const remembered = { api: await findFreePort(), mqtt: await findFreePort() };
    await writeFile(path.join(home, 'ports.json'), JSON.stringify(remembered));
    const chosen = await findFreePort();
    const got = await choosePorts(withDefaults(home, 1, 2, { FLOTILLA_API_PORT: String(chosen) }), quiet);
    expect(got).toEqual({ apiPort: chosen, mqttPort: remembered.mqtt });
    // The variable was for that start only.
    expect(JSON.parse(await readFile(path.join(home, 'ports.json'), 'utf8'))).toEqual(remembered);

    const blocker = await hold();
    try {
      const err = await choosePorts(withDefaults(home, 1, 2, { FLOTILLA_MQTT_PORT: String(blocker.port) }), quiet).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PortInUseError);
      expect((err as Error).message).toBe(`port ${blocker.port} (embedded MQTT broker) is already in use; set FLOTILLA_MQTT_PORT to another port`);
    } finally {
      await release(blocker);
    }
  });

  test('the TLS listeners (HTTPS, MQTT over TLS) take the next free port past a taken default and keep it', async () => {
    const taken = await hold();
    const base = withDefaults(home, await findFreePort(), await findFreePort(), { FLOTILLA_TLS: 'on' });
    const config = { ...base, tls: { ...base.tls, host: '127.0.0.1', httpsPort: taken.port, mqttsPort: await findFreePort() } };
    let first: Awaited<ReturnType<typeof choosePorts>>;
    try {
      first = await choosePorts(config, quiet);
    } finally {
      await release(taken);
    }
    expect(first.tls!.httpsPort).toBeGreaterThan(taken.port);
    const remembered = JSON.parse(await readFile(path.join(home, 'ports.json'), 'utf8'));
    expect(remembered).toMatchObject({ https: first.tls!.httpsPort, mqtts: first.tls!.mqttsPort });
    expect((await choosePorts(config, quiet)).tls).toEqual(first.tls);
  });

  test('a ports.json that is not ports stops the start naming the file', async () => {
    await writeFile(path.join(home, 'ports.json'), '{"api": "eighty"}');
    await expect(choosePorts(withDefaults(home, 1, 2), quiet)).rejects.toThrow(`${path.join(home, 'ports.json')} is not {"api": PORT, "mqtt": PORT}`);
  });

  test('the hub itself: with its default MQTT port held by another broker it takes the next one, and a second start gets the same ports with no variable', async () => {
    const db = await createTestDatabase();
    const mosquittoLike = await hold();
    const apiDefault = await findFreePort();
    const env = { DATABASE_URL: db.url, FLOTILLA_ADMIN_TOKEN: 'ports-test-admin-token-0123456789' };
    const log = pino({ level: 'silent' });
    try {
      const first = await startHub(withDefaults(home, apiDefault, mosquittoLike.port, env), log);
      const firstPorts = { api: Number(new URL(first.apiUrl).port), mqtt: first.mqttPort };
      await first.stop();
      expect(firstPorts.api).toBe(apiDefault);
      expect(firstPorts.mqtt).toBeGreaterThan(mosquittoLike.port);

      const second = await startHub(withDefaults(home, apiDefault, mosquittoLike.port, env), log);
      try {
        expect({ api: Number(new URL(second.apiUrl).port), mqtt: second.mqttPort }).toEqual(firstPorts);
        expect(second.mqttUrl).toBe(`mqtt://127.0.0.1:${firstPorts.mqtt}`);
        expect((await fetch(second.apiUrl + '/readyz')).status).toBe(200);
      } finally {
        await second.stop();
      }
    } finally {
      await release(mosquittoLike);
      await db.drop();
    }
  });
});
