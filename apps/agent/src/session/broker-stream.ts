import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { splitBrokerUrls } from '@flotilla/contracts';
import type { MqttClient } from 'mqtt';

/** One broker node: plain MQTT over TCP or MQTT over TLS. */
interface BrokerNode {
  tls: boolean;
  host: string;
  port: number;
}

const PLAIN = new Set(['mqtt:', 'tcp:']);
const SECURE = new Set(['mqtts:', 'ssl:']);

/**
 * The broker nodes of a URL list when every one is mqtt(s):// (what the hub
 * hands out), else null (ws://, wss://, or a SOCKS proxy through
 * MQTTJS_SOCKS_PROXY: then mqtt.js's own connect() builds the connection).
 */
export function tcpBrokerNodes(list: string, env: NodeJS.ProcessEnv = process.env): BrokerNode[] | null {
  if (env.MQTTJS_SOCKS_PROXY) return null;
  const nodes: BrokerNode[] = [];
  for (const u of splitBrokerUrls(list)) {
    const url = new URL(u);
    const secure = SECURE.has(url.protocol);
    if (!secure && !PLAIN.has(url.protocol)) return null;
    nodes.push({ tls: secure, host: url.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost', port: url.port ? Number(url.port) : secure ? 8883 : 1883 });
  }
  return nodes.length > 0 ? nodes : null;
}

/**
 * A stream builder for mqtt.js's MqttClient over TCP or TLS, moving to the
 * next node on every (re)connect as mqtt.js's `servers` option does. Built
 * here rather than through mqtt.connect(), which loads its WebSocket and SOCKS
 * transports (ws, socks, ip-address: about 6 MiB of the agent's RSS) on the
 * first connection whatever the URL. TLS as mqtt.js does it: the certificate
 * is verified (against `ca` when given), SNI for host names.
 */
export function brokerStreamBuilder(nodes: readonly BrokerNode[], ca: string | undefined): (client: MqttClient) => Duplex {
  let next = 0;
  return (client) => {
    const node = nodes[next++ % nodes.length]!;
    if (!node.tls) return net.createConnection({ host: node.host, port: node.port });
    const socket = tls.connect({
      host: node.host,
      port: node.port,
      rejectUnauthorized: true,
      ...(net.isIP(node.host) === 0 ? { servername: node.host } : {}),
      ...(ca ? { ca } : {}),
    });
    const onError = (err: Error) => {
      client.emit('error', err);
      socket.end();
    };
    socket.on('error', onError);
    socket.on('secureConnect', () => {
      if (!socket.authorized) socket.emit('error', new Error('TLS not authorized'));
      else socket.removeListener('error', onError);
    });
    return socket;
  };
}
