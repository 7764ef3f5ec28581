import fc from 'fast-check';
import pino from 'pino';
import { SPOKE_PUBLISH_CHANNELS, parseSpokeTopic } from '@flotilla/contracts';
import { POLICY_LIMITS, parsePolicyDocuments, readPolicyIdentities } from '@flotilla/policy';
import { LogThrottle } from '../../apps/hub/src/common/log-throttle.js';
import { type IngestOptions, handle } from '../../apps/hub/src/ingest/ingest.js';
import type { SpokeStateWriter } from '../../apps/hub/src/ingest/spoke-state-writer.js';
import { HubMetrics } from '../../apps/hub/src/metrics/hub-metrics.js';

/**
 * Bounded fuzzing (fixed seeds, a fixed number of runs) of the two parsers
 * that read what others send: the hub's MQTT ingest (topic, size, JSON,
 * schema) and the policy parser (YAML and JSON documents). Neither may throw,
 * and each must answer within its bounds.
 */

const counted = async (metrics: HubMetrics): Promise<number> => {
  const all = await metrics.registry.getMetricsAsJSON();
  let n = 0;
  for (const m of all) {
    if (m.name !== 'flotilla_hub_mqtt_messages_received_total' && m.name !== 'flotilla_hub_mqtt_messages_dropped_total') continue;
    for (const v of m.values) n += v.value;
  }
  return n;
};

describe('MQTT ingest decoder under fuzzing', () => {
  const channel = fc.constantFrom(...SPOKE_PUBLISH_CHANNELS, 'desired', 'commands', 'x');
  const spoke = fc.constantFrom('site-1', 'site-2', 'Bad Name', '', '+', '#');
  const topic = fc.oneof(
    fc.tuple(spoke, channel).map(([s, c]) => `flotilla/v1/spokes/${s}/${c}`),
    fc.string({ maxLength: 80 }),
  );
  const json = fc.jsonValue({ maxDepth: 6 });
  const nearValid = fc.record(
    {
      v: fc.oneof(fc.constant(1), fc.integer()),
      spoke: spoke,
      sentAt: fc.oneof(fc.constant('2025-01-02T03:04:05.000Z'), fc.string()),
      at: fc.constant('2025-01-02T03:04:05.000Z'),
      state: fc.constantFrom('online', 'offline', 'gone'),
      sessionId: fc.string({ maxLength: 10 }),
      acceptedGeneration: fc.integer(),
      observedGeneration: fc.integer(),
      conditions: fc.array(json, { maxLength: 3 }),
      deployments: fc.array(json, { maxLength: 3 }),
      jobs: fc.constant([]),
      type: fc.constantFrom('Notice', 'WorkloadError', 'JobProgress'),
      reason: fc.string({ maxLength: 10 }),
    },
    { requiredKeys: [] },
  );
  const payload = fc.oneof(
    fc.uint8Array({ maxLength: 512 }).map((a) => Buffer.from(a)),
    json.map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
    nearValid.map((v) => Buffer.from(JSON.stringify(v))),
  );

  it('never throws, hands on only valid messages of the topic\'s spoke, and counts every message exactly once', async () => {
    const metrics = new HubMetrics();
    const added: Array<{ name: string }> = [];
    const writer = { add: (p: { name: string }) => added.push(p) } as unknown as SpokeStateWriter;
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
    const o: IngestOptions = { endpoint: { url: 'mqtt://unused' } as IngestOptions['endpoint'], sharedSubscriptions: false, writer, metrics, log };
    const throttle = new LogThrottle(10_000, 1_000);
    let messages = 0;
    let empty = 0;
    fc.assert(
      fc.property(topic, payload, (t, p) => {
        const before = added.length;
        handle(o, throttle, t, p);
        messages++;
        const parsed = parseSpokeTopic(t);
        if (p.length === 0 && parsed && (SPOKE_PUBLISH_CHANNELS as readonly string[]).includes(parsed.channel)) empty++;
        for (const a of added.slice(before)) expect(`flotilla/v1/spokes/${a.name}/`).toBe(t.slice(0, t.lastIndexOf('/') + 1));
      }),
      { seed: 20261129, numRuns: 1_500 },
    );
    // Empty payloads on a spoke topic (a cleared retained presence) are neither received nor dropped.
    expect(await counted(metrics)).toBe(messages - empty);
    // Rate-limited: one line per spoke and reason per interval, not one per dropped message.
    expect(lines.length).toBeLessThan(40);
  });
});

describe('policy parser under fuzzing', () => {
  const yamlish = fc
    .array(
      fc.oneof(
        fc.constantFrom('apiVersion: flotilla.dev/v1', 'kind: Placement', 'kind: Model', 'metadata: {name: a}', 'spec:', '  selector: {}', '---', '- ', '  - x', '[', ']', '{', '}', '&a [1]', '*a', '"', "'", '#', ': :', '\t'),
        fc.string({ maxLength: 20 }),
      ),
      { maxLength: 30 },
    )
    .map((parts) => parts.join('\n'));
  const jsonDocs = fc.array(fc.jsonValue({ maxDepth: 5 }), { maxLength: 5 }).map((v) => JSON.stringify(v));

  it('never throws on arbitrary text, reports at most the error limit, and counts the rest', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(yamlish, jsonDocs, fc.string({ maxLength: 200 })), { minLength: 1, maxLength: 3 }), (texts) => {
        const sources = texts.map((text, i) => ({ file: `f${i}.yaml`, text }));
        const parsed = parsePolicyDocuments(sources);
        expect(parsed.errors.length).toBeLessThanOrEqual(POLICY_LIMITS.errors);
        expect(parsed.errorCount).toBeGreaterThanOrEqual(parsed.errors.length);
        for (const e of parsed.errors) expect(typeof e.message).toBe('string');
        const ids = readPolicyIdentities(sources);
        expect(ids.errors.length).toBeLessThanOrEqual(POLICY_LIMITS.errors);
      }),
      { seed: 20261129, numRuns: 120 },
    );
  });

  it('refuses anything nested past the depth limit, however the nesting is written', () => {
    fc.assert(
      fc.property(fc.integer({ min: POLICY_LIMITS.depth + 1, max: 5_000 }), fc.constantFrom('[', '{"a":', '- '), (depth, open) => {
        const close = open === '[' ? ']' : open === '{"a":' ? '}' : '';
        const text = `${open.repeat(depth)}1${close.repeat(depth)}`;
        const parsed = parsePolicyDocuments([{ file: 'deep.yaml', text }]);
        expect(parsed.objects).toEqual([]);
        expect(parsed.errorCount).toBeGreaterThan(0);
      }),
      { seed: 7, numRuns: 60 },
    );
    // Deep nesting behind any prefix is refused by the scan, never left to overflow the parser's stack.
    const token = fc.constantFrom('[', ']', '{', '}', "'", '"', ',', ' ', '\n', '- ', '? ', 'x', '#', ': ', '\\', 'a:');
    const opener = fc.constantFrom('[', '{', '{a: ', '- ', '? ', '[x, ');
    fc.assert(
      fc.property(fc.array(token, { maxLength: 40 }), opener, (prefix, open) => {
        // (Behind a `#` or an open quote the nesting is text, which is fine too.)
        const parsed = parsePolicyDocuments([{ file: 'deep.yaml', text: `${prefix.join('')}${open.repeat(5_000)}x\n` }]);
        expect(parsed.objects).toEqual([]);
        expect(parsed.errors.filter((e) => e.message.startsWith('cannot be parsed'))).toEqual([]);
      }),
      { seed: 11, numRuns: 25 },
    );
    // A million compact sequences on one line: refused by the scan, not by a stack overflow in the parser.
    for (const parse of [parsePolicyDocuments, readPolicyIdentities]) {
      // An apostrophe in plain text does not hide the brackets after it.
      const hidden = parse([{ file: 'deep.yaml', text: `a: [it's${'['.repeat(300_000)}\n` }]);
      expect(hidden.errors[0]?.message).toBe(`nested more than ${POLICY_LIMITS.depth} levels deep`);
      for (const indicator of ['- ', '? ', '- ? ']) {
        const r = parse([{ file: 'deep.yaml', text: `${indicator.repeat(300_000)}x\n` }]);
        expect(r.errors[0]?.message).toContain('nesting is limited');
      }
    }
  });
});

describe('policy byte limit', () => {
  it('counts UTF-8 bytes, not characters, across files', () => {
    const third = Math.floor(POLICY_LIMITS.bytes / 3);
    // 'é' is two bytes: two files of `third` of them are over the limit, one is not.
    const one = parsePolicyDocuments([{ file: 'a.yaml', text: `# ${'é'.repeat(third)}\n` }]);
    expect(one.errors.map((e) => e.message)).toEqual([]);
    const two = parsePolicyDocuments([
      { file: 'a.yaml', text: `# ${'é'.repeat(third)}\n` },
      { file: 'b.yaml', text: `# ${'é'.repeat(third)}\n` },
    ]);
    expect(two.errors.map((e) => `${e.file}: ${e.message}`)).toEqual([`b.yaml: policy input is over ${POLICY_LIMITS.bytes} bytes (the limit on one apply, diff, delete or git sync)`]);
  });
});
