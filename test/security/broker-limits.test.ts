import net from 'node:net';
import mqtt from 'mqtt';
import pino from 'pino';
import { MAX_MESSAGE_BYTES, MAX_PACKET_BYTES, spokeTopic } from '@flotilla/contracts';
import type { BrokerAuthority, BrokerIdentity } from '../../apps/hub/src/broker/broker-authority.js';
import type { BrokerRefusal } from '../../apps/hub/src/broker/broker-refusals.js';
import { type EmbeddedBroker, startEmbeddedBroker } from '../../apps/hub/src/broker/embedded-broker.js';
import { readFile } from 'node:fs/promises';
import { findMosquitto, startMosquitto } from '../support/mosquitto.js';
import { waitFor } from '../support/wait.js';

/**
 * Findings 1 and 11 of the security issue, replayed from outside against the
 * embedded broker (aedes behind Flotilla's packet guard) over real TCP: huge
 * declared lengths, slow or missing CONNECTs, a flood of unauthenticated
 * sockets, oversized publishes from an authenticated spoke.
 */

/** The broker's authentication, without a database: one spoke, `site-1` / `secret`. */
const authority = {
  authenticate: async (_clientId: string, username: string | undefined, password: Buffer | undefined): Promise<BrokerIdentity | null> =>
    username === 'site-1' && password?.toString() === 'secret' ? { kind: 'spoke', spoke: 'site-1', username } : null,
} as unknown as BrokerAuthority;

/** A CONNECT fixed header announcing `length` bytes, as the attack sent it (no body follows). */
function fixedHeader(type: number, length: number): Buffer {
  const bytes = [type << 4];
  let n = length;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    bytes.push(b);
  } while (n > 0);
  return Buffer.from(bytes);
}

/** Opens a socket, sends `bytes`, resolves with how long the broker took to close it (or null if it stayed open). */
function sendAndAwaitClose(port: number, bytes: Buffer[], waitMs: number): Promise<{ closedAfterMs: number | null; received: Buffer }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ closedAfterMs: null, received: Buffer.concat(received) });
    }, waitMs);
    socket.on('data', (d) => received.push(d));
    socket.on('error', () => undefined);
    socket.on('connect', () => {
      for (const b of bytes) socket.write(b);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ closedAfterMs: Date.now() - started, received: Buffer.concat(received) });
    });
    socket.on('timeout', () => reject(new Error('timeout')));
  });
}

describe('embedded broker limits (findings 1 and 11)', () => {
  let broker: EmbeddedBroker;
  const refusals: BrokerRefusal[] = [];
  const lines: unknown[] = [];

  beforeAll(async () => {
    const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    broker = await startEmbeddedBroker({
      host: '127.0.0.1',
      port: 0,
      authority,
      log,
      limits: { connectTimeoutMs: 1_500, maxPendingConnections: 20 },
      onRefused: (r) => refusals.push(r),
    });
  });
  afterAll(async () => {
    await broker.close();
  });
  beforeEach(() => {
    refusals.length = 0;
    lines.length = 0;
  });

  it('closes an unauthenticated connection whose CONNECT announces 250 MiB as soon as the header arrives', async () => {
    // The close comes from the header alone: the test sends no body, so a broker waiting for one would hold the socket open.
    const r = await sendAndAwaitClose(broker.port, [fixedHeader(1, 250 * 1024 * 1024), Buffer.alloc(64 * 1024, 0x41)], 1_000);
    expect(r.closedAfterMs).not.toBeNull();
    expect(refusals).toEqual(['ConnectTooLarge']);
  });

  it('closes a connection whose first packet is not a CONNECT', async () => {
    const r = await sendAndAwaitClose(broker.port, [fixedHeader(3, 10), Buffer.alloc(10)], 1_000);
    expect(r.closedAfterMs).not.toBeNull();
    expect(refusals).toEqual(['NotConnect']);
  });

  it('closes a connection that never completes its CONNECT once the connect time is over', async () => {
    // A CONNECT header announcing 100 bytes, and only 10 of them.
    const r = await sendAndAwaitClose(broker.port, [fixedHeader(1, 100), Buffer.alloc(10)], 5_000);
    expect(r.closedAfterMs).not.toBeNull();
    expect(refusals).toEqual(['ConnectTimeout']);
  });

  it('refuses connections beyond the bound on pending unauthenticated ones, and serves again once they are gone', async () => {
    const idle = await Promise.all(
      Array.from({ length: 20 }, () => new Promise<net.Socket>((resolve) => {
        const s = net.connect(broker.port, '127.0.0.1', () => resolve(s));
        s.on('error', () => undefined);
      })),
    );
    await waitFor('the broker to have seen every idle socket', () => refusals.length === 0 && idle.every((s) => !s.destroyed), 2_000);
    const over = await sendAndAwaitClose(broker.port, [], 1_000);
    expect(over.closedAfterMs).not.toBeNull();
    expect(refusals).toContain('TooManyPending');
    for (const s of idle) s.destroy();
    await waitFor('a spoke to connect once the idle sockets are gone', async () => {
      const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'site-1', username: 'site-1', password: 'secret', reconnectPeriod: 0 }).catch(() => null);
      await c?.endAsync(true);
      return c !== null;
    }, 5_000);
    // Each refusal is counted, but the log says it once per reason and interval.
    const logged = lines.filter((l) => (l as { reason?: string }).reason === 'TooManyPending');
    expect(logged.length).toBe(1);
  });

  describe('an authenticated spoke', () => {
    let client: mqtt.MqttClient;
    beforeEach(async () => {
      client = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'site-1', username: 'site-1', password: 'secret', reconnectPeriod: 0 });
    });
    afterEach(async () => {
      await client.endAsync(true);
    });

    it('still publishes a status report of the largest allowed size', async () => {
      await client.publishAsync(spokeTopic('site-1', 'status'), Buffer.alloc(MAX_MESSAGE_BYTES, 0x20), { qos: 1 });
      expect(refusals).toEqual([]);
    });

    it('gets no PUBACK for a publish over the message limit and is disconnected', async () => {
      let acked = false;
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
      client.publish(spokeTopic('site-1', 'status'), Buffer.alloc(MAX_MESSAGE_BYTES + 1, 0x20), { qos: 1 }, (err) => {
        if (!err) acked = true;
      });
      await closed;
      expect(acked).toBe(false);
      expect(refusals).toEqual(['PublishTooLarge']);
    });

    it('is cut at the header of a PUBLISH announcing 200 MiB, before any body is read', async () => {
      const closed = new Promise<void>((resolve) => client.stream.once('close', () => resolve()));
      client.stream.write(fixedHeader(3, 200 * 1024 * 1024));
      await closed;
      expect(refusals).toEqual(['PacketTooLarge']);
      expect(MAX_PACKET_BYTES).toBeLessThan(300 * 1024);
    });
  });
});

const mosquitto = findMosquitto();
if (!mosquitto.ok) console.warn(`SKIPPED the Mosquitto part of test/security/broker-limits.test.ts: ${mosquitto.reason}`);
const describeWithMosquitto = mosquitto.ok ? describe : describe.skip;

describeWithMosquitto('Mosquitto with the shipped limits (finding 1 on an external broker)', () => {
  it('ships max_packet_size = MAX_PACKET_BYTES, and Mosquitto then cuts a 250 MiB CONNECT at its header', async () => {
    const shipped = await readFile(new URL('../../deploy/mosquitto/mosquitto.conf', import.meta.url), 'utf8');
    const limitLines = shipped.split('\n').filter((l) => /^(max_packet_size|message_size_limit) /.test(l));
    expect(limitLines).toEqual([`max_packet_size ${MAX_PACKET_BYTES}`, `message_size_limit ${MAX_MESSAGE_BYTES}`]);
    const broker = await startMosquitto({ extraConfig: limitLines });
    try {
      const r = await sendAndAwaitClose(broker.port, [fixedHeader(1, 250 * 1024 * 1024), Buffer.alloc(64 * 1024, 0x41)], 2_000);
      expect(r.closedAfterMs).not.toBeNull();
      await waitFor('Mosquitto to log the refusal', () => broker.log().includes('oversize packet'), 2_000);
    } finally {
      await broker.stop();
    }
  });
});
