import mqtt, { type MqttClient } from 'mqtt';
import { parseSpokeTopic, type AgentEvent, type Presence, type SpokeChannel, type StatusReport, type Telemetry } from '@flotilla/contracts';

export interface Seen {
  spoke: string;
  channel: SpokeChannel;
  retain: boolean;
  body: unknown;
}

/**
 * Plays the hub's side of the broker in tests: watches everything spokes
 * send and publishes desired states and commands.
 */
export class Observer {
  readonly seen: Seen[] = [];
  private constructor(private readonly client: MqttClient) {}

  static async connect(url: string): Promise<Observer> {
    const client = await mqtt.connectAsync(url, { clientId: `observer-${Math.random().toString(16).slice(2)}`, reconnectPeriod: 0 });
    const observer = new Observer(client);
    client.on('message', (topic, payload, packet) => {
      const parsed = parseSpokeTopic(topic);
      if (parsed === null) return;
      let body: unknown;
      try {
        body = JSON.parse(payload.toString('utf8'));
      } catch {
        body = payload.toString('utf8');
      }
      observer.seen.push({ ...parsed, retain: packet.retain, body });
    });
    await client.subscribeAsync(['flotilla/v1/spokes/+/status', 'flotilla/v1/spokes/+/events', 'flotilla/v1/spokes/+/presence', 'flotilla/v1/spokes/+/telemetry'], { qos: 1 });
    return observer;
  }

  statuses(spoke: string): StatusReport[] {
    return this.of(spoke, 'status') as StatusReport[];
  }

  events(spoke: string): AgentEvent[] {
    return this.of(spoke, 'events') as AgentEvent[];
  }

  presences(spoke: string): Presence[] {
    return this.of(spoke, 'presence') as Presence[];
  }

  telemetry(spoke: string): Telemetry[] {
    return this.of(spoke, 'telemetry') as Telemetry[];
  }

  lastStatus(spoke: string): StatusReport | undefined {
    return this.statuses(spoke).at(-1);
  }

  async publish(topic: string, payload: string | Buffer, opts: { retain?: boolean; qos?: 0 | 1 } = {}): Promise<void> {
    await this.client.publishAsync(topic, payload, { qos: opts.qos ?? 1, retain: opts.retain ?? false });
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }

  private of(spoke: string, channel: SpokeChannel): unknown[] {
    return this.seen.filter((s) => s.spoke === spoke && s.channel === channel).map((s) => s.body);
  }
}
