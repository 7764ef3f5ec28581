import { indexedRetainedPersistence, topicMatchesFilter } from './retained-index.js';

describe('topicMatchesFilter (MQTT 3.1.1 section 4.7)', () => {
  it.each([
    ['sport/tennis/player1/#', 'sport/tennis/player1', true],
    ['sport/tennis/player1/#', 'sport/tennis/player1/ranking', true],
    ['sport/tennis/player1/#', 'sport/tennis/player1/score/wimbledon', true],
    ['sport/#', 'sport', true],
    ['#', 'sport/tennis', true],
    ['sport/tennis/+', 'sport/tennis/player1', true],
    ['sport/tennis/+', 'sport/tennis/player1/ranking', false],
    ['sport/+', 'sport', false],
    ['sport/+', 'sport/', true],
    ['+/+', '/finance', true],
    ['/+', '/finance', true],
    ['+', '/finance', false],
    ['#', '$SYS/broker', false],
    ['+/monitor/Clients', '$SYS/monitor/Clients', false],
    ['$SYS/#', '$SYS/broker', true],
    ['flotilla/v1/spokes/+/presence', 'flotilla/v1/spokes/a/presence', true],
    ['flotilla/v1/spokes/a/desired', 'flotilla/v1/spokes/a/desired', true],
    ['flotilla/v1/spokes/a/desired', 'flotilla/v1/spokes/b/desired', false],
    ['flotilla/v1/spokes/a/desired', 'flotilla/v1/spokes/a/desired/x', false],
  ])('%s against %s is %s', (filter, topic, expected) => {
    expect(topicMatchesFilter(filter, topic)).toBe(expected);
  });
});

describe('indexedRetainedPersistence', () => {
  type P = {
    asyncPersistence: {
      storeRetained(p: object): Promise<void>;
      createRetainedStreamCombi(patterns: string[]): AsyncIterable<{ topic: string; payload: Buffer }>;
    };
  };
  const packet = (topic: string, text: string) => ({ cmd: 'publish', topic, payload: Buffer.from(text), qos: 1, retain: true });
  async function collect(p: P, patterns: string[]) {
    const out: string[] = [];
    for await (const pkt of p.asyncPersistence.createRetainedStreamCombi(patterns)) out.push(`${pkt.topic}=${pkt.payload.toString()}`);
    return out.sort();
  }

  it('answers literal and wildcard filters with the retained messages they match, and forgets a cleared topic', async () => {
    const p = indexedRetainedPersistence() as P;
    await p.asyncPersistence.storeRetained(packet('flotilla/v1/spokes/a/desired', 'a1'));
    await p.asyncPersistence.storeRetained(packet('flotilla/v1/spokes/b/desired', 'b1'));
    await p.asyncPersistence.storeRetained(packet('flotilla/v1/spokes/a/presence', 'on'));
    await p.asyncPersistence.storeRetained(packet('flotilla/v1/spokes/a/desired', 'a2'));
    expect(await collect(p, ['flotilla/v1/spokes/a/desired', 'flotilla/v1/spokes/a/commands'])).toEqual(['flotilla/v1/spokes/a/desired=a2']);
    expect(await collect(p, ['flotilla/v1/spokes/+/desired'])).toEqual(['flotilla/v1/spokes/a/desired=a2', 'flotilla/v1/spokes/b/desired=b1']);
    expect(await collect(p, ['flotilla/#'])).toHaveLength(3);
    await p.asyncPersistence.storeRetained(packet('flotilla/v1/spokes/b/desired', ''));
    expect(await collect(p, ['flotilla/v1/spokes/b/desired', 'flotilla/v1/spokes/+/desired'])).toEqual(['flotilla/v1/spokes/a/desired=a2']);
  });
});
