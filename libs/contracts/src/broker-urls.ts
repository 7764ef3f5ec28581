/**
 * A broker address may list several URLs, comma-separated
 * (`mqtt://node-a:1883,mqtt://node-b:1883`): the nodes of one broker cluster.
 * Clients connect to the first and move to the next on each reconnect.
 */
export function splitBrokerUrls(list: string): string[] {
  return list
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '');
}

export interface MqttServer {
  host: string;
  port: number;
  protocol: 'mqtt' | 'mqtts' | 'ws' | 'wss' | 'tcp' | 'ssl';
}

const DEFAULT_PORTS: Record<string, number> = { mqtt: 1883, tcp: 1883, mqtts: 8883, ssl: 8883, ws: 80, wss: 443 };

/**
 * What mqtt.js needs to fail over: the first URL (credentials and options
 * from it) and, with more than one, its `servers` list, which it rotates
 * through on every (re)connect.
 */
export function mqttConnectTarget(list: string): { url: string; servers?: MqttServer[] } {
  const urls = splitBrokerUrls(list);
  const first = urls[0];
  if (!first) throw new Error('no broker URL given');
  if (urls.length === 1) return { url: first };
  const servers = urls.map((u) => {
    const parsed = new URL(u);
    const protocol = parsed.protocol.replace(/:$/, '') as MqttServer['protocol'];
    return { host: parsed.hostname, port: parsed.port ? Number(parsed.port) : (DEFAULT_PORTS[protocol] ?? 1883), protocol };
  });
  return { url: first, servers };
}
