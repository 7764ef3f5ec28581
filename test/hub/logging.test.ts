import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { pinoHttp } from 'pino-http';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError, loadConfig } from '../../apps/hub/src/config/config.js';
import { findFreePort } from '../../apps/hub/src/common/ports.js';
import { requestLogOptions } from '../../apps/hub/src/logger.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { waitFor } from '../support/wait.js';

/** Serves one route through the hub's request logging and returns what was logged for one request. */
async function logOf(level: string, headers: Record<string, string>): Promise<Record<string, any>> {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const log = pino({ level, redact: { paths: ['req.headers.authorization', 'req.headers.cookie'], censor: '[redacted]' } }, sink);
  const logRequest = pinoHttp(requestLogOptions(log));
  const server: Server = createServer((req, res) => {
    logRequest(req, res);
    res.setHeader('content-type', 'application/json');
    res.end('{"ok":true}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  try {
    const r = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/things?x=1`, { headers });
    expect(r.status).toBe(200);
    await waitFor('the request log line', () => lines.length > 0, 5_000, 10);
  } finally {
    await new Promise((r) => server.close(r));
  }
  return JSON.parse(lines[0]!);
}

describe('hub logs', () => {
  test('FLOTILLA_LOG_FORMAT is pretty on a terminal and json otherwise unless set; a bad value is named', () => {
    expect(loadConfig({}, '/tmp', true).logFormat).toBe('pretty');
    expect(loadConfig({}, '/tmp', false).logFormat).toBe('json');
    expect(loadConfig({ FLOTILLA_LOG_FORMAT: 'json' }, '/tmp', true).logFormat).toBe('json');
    expect(loadConfig({ FLOTILLA_LOG_FORMAT: 'pretty' }, '/tmp', false).logFormat).toBe('pretty');
    const err = (() => {
      try {
        loadConfig({ FLOTILLA_LOG_FORMAT: 'xml', FLOTILLA_API_PORT: 'x' }, '/tmp', false);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain('FLOTILLA_LOG_FORMAT must be pretty or json');
    expect((err as Error).message).toContain('FLOTILLA_API_PORT');
  });

  test('at info a request is one line with method, URL, status, duration and request id, and no headers', async () => {
    const line = await logOf('info', { authorization: 'Bearer flt_secret-value', 'x-request-id': 'req-42', 'user-agent': 'probe' });
    expect(line.msg).toMatch(/^GET \/api\/v1\/things\?x=1 200 \d+ ms$/);
    expect(line.req).toEqual({ id: 'req-42', method: 'GET', url: '/api/v1/things?x=1' });
    expect(line.res).toEqual({ statusCode: 200 });
    expect(typeof line.responseTime).toBe('number');
    expect(JSON.stringify(line)).not.toContain('probe');
    expect(JSON.stringify(line)).not.toContain('flt_secret-value');
  });

  test('at debug the headers are logged too, the token redacted', async () => {
    const line = await logOf('debug', { authorization: 'Bearer flt_secret-value', 'user-agent': 'probe' });
    expect(line.req.headers['user-agent']).toBe('probe');
    expect(line.req.headers.authorization).toBe('[redacted]');
    expect(line.res.headers).toBeDefined();
  });
});

describe('flotilla hub output', () => {
  let db: TestDatabase;
  let home: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    home = await mkdtemp(path.join(os.tmpdir(), 'flotilla-logs-'));
  });
  afterAll(async () => {
    await db.drop();
    await rm(home, { recursive: true, force: true });
  });

  async function run(format: 'pretty' | 'json') {
    const apiPort = await findFreePort();
    const out = { stdout: '', stderr: '' };
    const hub: ChildProcess = spawn(process.execPath, ['bin/flotilla.js', 'hub', '--no-local-agent'], {
      env: {
        ...process.env,
        FLOTILLA_HOME: home,
        DATABASE_URL: db.url,
        FLOTILLA_API_PORT: String(apiPort),
        FLOTILLA_API_HOST: '127.0.0.1',
        FLOTILLA_MQTT_PORT: '0',
        FLOTILLA_MQTT_HOST: '127.0.0.1',
        FLOTILLA_ADMIN_TOKEN: 'logs-test-admin-token-0123456789',
        FLOTILLA_LOG_FORMAT: format,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    hub.stdout!.on('data', (c: Buffer) => (out.stdout += c.toString()));
    hub.stderr!.on('data', (c: Buffer) => (out.stderr += c.toString()));
    try {
      await waitFor('the hub to be up', () => {
        if (hub.exitCode !== null) throw new Error(`hub exited: ${out.stderr}`);
        return (out.stdout + out.stderr).includes('Flotilla hub is up');
      }, 45_000, 50);
      const r = await fetch(`http://127.0.0.1:${apiPort}/api/v1/models`, { headers: { authorization: 'Bearer logs-test-admin-token-0123456789' } });
      expect(r.status).toBe(200);
      await waitFor('the request log', () => out.stdout.includes('GET /api/v1/models 200'), 5_000, 20);
    } finally {
      const exited = new Promise((r) => hub.once('exit', r));
      hub.kill('SIGTERM');
      await exited;
    }
    return out;
  }

  test('json: stdout is JSON lines only, the banner goes to stderr', async () => {
    const out = await run('json');
    const lines = out.stdout.split('\n').filter(Boolean);
    for (const l of lines) expect(() => JSON.parse(l)).not.toThrow();
    expect(lines.map((l) => JSON.parse(l).msg)).toContain('Flotilla hub is up');
    expect(out.stderr).toContain('Flotilla hub is up.\n  API:');
  }, 60_000);

  test('pretty: readable lines with the banner whole between them, no JSON', async () => {
    const out = await run('pretty');
    const lines = out.stdout.split('\n').filter(Boolean);
    expect(lines.filter((l) => l.trimStart().startsWith('{"'))).toEqual([]);
    expect(out.stdout).toMatch(/INFO.*\[http\] GET \/api\/v1\/models 200 \d+ ms/);
    expect(out.stdout).toMatch(/\nFlotilla hub is up\.\n {2}API: {10}http:\/\/127\.0\.0\.1:\d+ .*\n {2}MQTT: {9}mqtt:\/\/127\.0\.0\.1:\d+\n/);
  }, 60_000);
});
