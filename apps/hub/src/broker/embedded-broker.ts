import net from 'node:net';
import { Aedes, type AedesOptions, type Client } from 'aedes';
import { indexedRetainedPersistence } from './retained-index.js';
import { MAX_MESSAGE_BYTES, MAX_PACKET_BYTES, mayPublish, maySubscribe } from '@flotilla/contracts';
import type { Logger } from 'pino';
import { PortInUseError } from '../common/ports.js';
import type { BrokerAuthority, BrokerIdentity } from './broker-authority.js';
import { LogThrottle } from '../common/log-throttle.js';
import { MqttPacketGuard, type PacketGuardLimits } from './mqtt-packet-guard.js';
import type { BrokerRefusal } from './broker-refusals.js';


export interface BrokerLimits extends PacketGuardLimits {
  /** TCP connections accepted but not yet authenticated; more are closed at once. */
  maxPendingConnections: number;
}

export const DEFAULT_BROKER_LIMITS: BrokerLimits = {
  maxPacketBytes: MAX_PACKET_BYTES,
  maxConnectBytes: 16 * 1024,
  connectTimeoutMs: 10_000,
  maxPendingConnections: 512,
};

export interface EmbeddedBroker {
  port: number;
  /** Ends the live session of a spoke (after revocation). */
  disconnect(clientId: string): boolean;
  connectedClients(): number;
  /** Ids of the clients connected now. */
  connectedClientIds(): string[];
  /**
   * Publishes as the broker itself, in process: the same retained store,
   * offline queues and routing as a client's PUBLISH, without the loopback
   * MQTT hop (serialising, parsing and a second socket write per message).
   */
  publish(topic: string, payload: string, opts: { qos: 0 | 1; retain: boolean }): Promise<void>;
  /**
   * Waits, at most `timeoutMs`, until the broker has delivered what it has
   * queued. Run before the hub closes its own sessions: when a whole fleet
   * has just dropped, aedes still holds thousands of wills, and delivering
   * them to closed sessions completes synchronously, so mqemitter recursed
   * through its queue until the stack overflowed.
   */
  drain(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

type AuthedClient = Client & { flotilla?: BrokerIdentity };

const NOT_AUTHORIZED = 5;
const BAD_CREDENTIALS = 4;

/**
 * The embedded MQTT broker (aedes) of `npm start`. Every client authenticates
 * against the hub database; a spoke may publish only to its own status,
 * telemetry, events and presence topics and subscribe only to its own desired
 * and commands topics. Authentication runs before aedes registers the client,
 * so a client that is not the spoke cannot take over its session.
 */
export async function startEmbeddedBroker(opts: {
  host: string;
  port: number;
  authority: BrokerAuthority;
  log: Logger;
  portVariable?: string;
  limits?: Partial<BrokerLimits>;
  /** Counts every refusal (exactly; the log lines about them are rate-limited). */
  onRefused?: (reason: BrokerRefusal) => void;
}): Promise<EmbeddedBroker> {
  const { authority, log } = opts;
  const limits: BrokerLimits = { ...DEFAULT_BROKER_LIMITS, ...opts.limits };
  const throttle = new LogThrottle();
  const refused = (reason: BrokerRefusal, fields: Record<string, unknown>, message: string) => {
    opts.onRefused?.(reason);
    const { log: write, suppressed } = throttle.admit(reason);
    if (write) log.warn({ ...fields, reason, ...(suppressed ? { suppressedSinceLast: suppressed } : {}) }, message);
  };
  const broker = await Aedes.createBroker({
    id: 'flotilla-embedded',
    connectTimeout: limits.connectTimeoutMs,
    persistence: indexedRetainedPersistence() as AedesOptions['persistence'],
    authenticate: (client, username, password, done) => {
      authority
        .authenticate(client.id, username, password)
        .then((identity) => {
          if (!identity) {
            refused('BadCredentials', { clientId: client.id, username }, 'mqtt authentication refused');
            const err = Object.assign(new Error('bad username or password'), { returnCode: BAD_CREDENTIALS });
            return done(err, false);
          }
          (client as AuthedClient).flotilla = identity;
          done(null, true);
        })
        .catch((err: Error) => {
          log.error({ err }, 'mqtt authentication failed');
          done(Object.assign(new Error('server unavailable'), { returnCode: 3 }), false);
        });
    },
    authorizePublish: (client, packet, callback) => {
      const id = (client as AuthedClient | null)?.flotilla;
      if (!client || id?.kind === 'hub') return callback(null);
      // Refused before aedes writes the PUBACK: MQTT 3.1.1 has no negative acknowledgement, so the client is disconnected.
      const size = typeof packet.payload === 'string' ? Buffer.byteLength(packet.payload) : packet.payload.length;
      if (size > MAX_MESSAGE_BYTES) {
        refused('PublishTooLarge', { clientId: client.id, topic: packet.topic, bytes: size }, `mqtt publish over ${MAX_MESSAGE_BYTES} bytes refused`);
        return callback(Object.assign(new Error(`payload of ${size} bytes is over the limit of ${MAX_MESSAGE_BYTES}`), { returnCode: NOT_AUTHORIZED }));
      }
      if (id?.kind === 'spoke' && mayPublish(id.spoke, packet.topic)) return callback(null);
      refused('PublishNotAllowed', { clientId: client.id, topic: packet.topic }, 'mqtt publish refused');
      callback(Object.assign(new Error(`not authorised to publish to ${packet.topic}`), { returnCode: NOT_AUTHORIZED }));
    },
    authorizeSubscribe: (client, sub, callback) => {
      const id = (client as AuthedClient).flotilla;
      if (id?.kind === 'hub') return callback(null, sub);
      if (id?.kind === 'spoke' && maySubscribe(id.spoke, sub.topic)) return callback(null, sub);
      refused('SubscribeNotAllowed', { clientId: client.id, topic: sub.topic }, 'mqtt subscribe refused');
      // A null subscription makes aedes answer SUBACK 0x80 (failure) for this filter.
      callback(null, null);
    },
  });
  // Sockets whose CONNECT the broker has not accepted yet: bounded in number, in time (the guard) and in bytes.
  const pending = new Set<MqttPacketGuard>();
  broker.on('client', (c) => {
    if (!(c.conn instanceof MqttPacketGuard)) return;
    pending.delete(c.conn);
    c.conn.accept();
  });
  // Every listener (plain, or TLS: a TLSSocket is a net.Socket) hands its sockets here, so every one is guarded.
  const acceptConnection = (socket: net.Socket) => {
    if (pending.size >= limits.maxPendingConnections) {
      refused('TooManyPending', { remoteAddress: socket.remoteAddress, pending: pending.size }, 'mqtt connection refused: too many unauthenticated connections');
      socket.destroy();
      return;
    }
    const guard = new MqttPacketGuard(socket, limits, (reason, detail) =>
      refused(reason, { remoteAddress: socket.remoteAddress, detail }, 'mqtt connection cut'),
    );
    pending.add(guard);
    guard.once('close', () => pending.delete(guard));
    broker.handle(guard);
  };
  const server = net.createServer(acceptConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new PortInUseError(opts.port, opts.portVariable ?? 'FLOTILLA_MQTT_PORT', 'embedded MQTT broker') : err),
    );
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  // Tracked from aedes' public events rather than its private client table.
  const clients = new Map<string, Client>();
  broker.on('client', (c) => clients.set(c.id, c));
  broker.on('clientDisconnect', (c) => {
    if (clients.get(c.id) === c) clients.delete(c.id);
  });
  return {
    port,
    disconnect(clientId) {
      const c = clients.get(clientId);
      if (!c) return false;
      c.close();
      return true;
    },
    connectedClients: () => broker.connectedClients,
    connectedClientIds: () => [...clients.keys()],
    publish: (topic, payload, o) =>
      new Promise<void>((resolve, reject) => {
        const packet = { cmd: 'publish' as const, topic, payload: Buffer.from(payload), qos: o.qos, retain: o.retain, dup: false };
        broker.publish(packet, (err?: Error | null) => (err ? reject(err) : resolve()));
      }),
    drain: async (timeoutMs) => {
      // aedes has no public "queue empty" signal; its mqemitter's depth is the only measure (see drain() above).
      const mq = (broker as unknown as { mq: { length: number; current: number } }).mq;
      const end = Date.now() + timeoutMs;
      while (mq.length > 0 || mq.current > 0) {
        if (Date.now() > end) return false;
        await new Promise((r) => setTimeout(r, 10));
      }
      return true;
    },
    close: async () => {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      for (const c of clients.values()) c.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
