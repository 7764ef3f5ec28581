import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { MqttClient } from 'mqtt';
import { brokerStreamBuilder, tcpBrokerNodes } from './broker-stream.js';

describe('broker streams built for mqtt.js', () => {
  it('takes mqtt(s):// lists (default ports, IPv6), and leaves ws://, wss:// and SOCKS proxies to mqtt.connect()', () => {
    expect(tcpBrokerNodes('mqtt://a:1884, mqtts://b,tcp://[::1]:2000,ssl://c', {})).toEqual([
      { tls: false, host: 'a', port: 1884 },
      { tls: true, host: 'b', port: 8883 },
      { tls: false, host: '::1', port: 2000 },
      { tls: true, host: 'c', port: 8883 },
    ]);
    expect(tcpBrokerNodes('mqtt://a,ws://b:9001', {})).toBeNull();
    expect(tcpBrokerNodes('wss://b', {})).toBeNull();
    expect(tcpBrokerNodes('mqtt://a', { MQTTJS_SOCKS_PROXY: 'socks5://proxy:1080' })).toBeNull();
  });

  it('moves to the next node on every connection, and hands TLS failures to the client', async () => {
    const accepted: string[] = [];
    const servers = await Promise.all(
      ['one', 'two'].map(
        (name) =>
          new Promise<net.Server>((resolve) => {
            const s = net.createServer((socket) => {
              accepted.push(name);
              socket.destroy();
            });
            s.listen(0, '127.0.0.1', () => resolve(s));
          }),
      ),
    );
    try {
      const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
      const build = brokerStreamBuilder(ports.map((port) => ({ tls: false, host: '127.0.0.1', port })), undefined);
      const client = new EventEmitter() as unknown as MqttClient;
      for (let i = 0; i < 3; i++) {
        const stream = build(client);
        await new Promise((resolve) => stream.once('close', resolve));
      }
      expect(accepted).toEqual(['one', 'two', 'one']);

      // A TLS node that is not TLS at all: the handshake fails and the client hears of it.
      const tlsBuild = brokerStreamBuilder([{ tls: true, host: '127.0.0.1', port: ports[0]! }], undefined);
      const errors: Error[] = [];
      const tlsClient = new EventEmitter() as unknown as MqttClient;
      tlsClient.on('error', (err: Error) => errors.push(err));
      const stream = tlsBuild(tlsClient);
      await new Promise((resolve) => stream.once('close', resolve));
      expect(errors.length).toBe(1);
    } finally {
      for (const s of servers) s.close();
    }
  });
});
