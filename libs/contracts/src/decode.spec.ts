import { samplePayload, sampleUnsigned } from './__fixtures__/desired.js';
import { decodeMessage } from './decode.js';
import { MAX_MESSAGE_BYTES } from './limits.js';

const status = {
  v: 1,
  spoke: 'site-17',
  sentAt: '2025-01-02T03:04:05.000Z',
  acceptedGeneration: 2,
  observedGeneration: 2,
  conditions: [{ type: 'Ready', status: 'True', reason: 'AllReady', message: '', lastTransitionTime: '2025-01-02T03:04:05.000Z', observedGeneration: 2 }],
  deployments: [],
  jobs: [],
};

describe('decodeMessage', () => {
  it('decodes a valid status report from a Buffer and from a string', () => {
    const fromBuffer = decodeMessage('status', Buffer.from(JSON.stringify(status)));
    expect(fromBuffer).toMatchObject({ ok: true, channel: 'status', value: status });
    expect(decodeMessage('status', JSON.stringify(status)).ok).toBe(true);
  });

  it('returns the raw JSON beside the parsed value, which has schema defaults filled in', () => {
    const unsigned = sampleUnsigned();
    const raw = { ...unsigned, payload: { ...samplePayload(), deployments: [] }, sig: 'AAAA' };
    const result = decodeMessage('desired', JSON.stringify(raw));
    expect(result.ok).toBe(true);
    expect(result.ok && result.raw).toEqual(raw);
    // trainer.hyperparameters has a default; the raw keeps what was sent
    expect(result.ok && result.value.payload.fineTuneJobs[0]?.trainer.hyperparameters).toEqual({ epochs: 30, learningRate: 0.05 });
  });

  it('decodes commands, presence, events and telemetry', () => {
    expect(decodeMessage('commands', JSON.stringify({ v: 1, id: 'c1', type: 'resync', issuedAt: '2025-01-02T03:04:05Z' })).ok).toBe(true);
    expect(
      decodeMessage('presence', JSON.stringify({ v: 1, spoke: 'a', state: 'online', sessionId: 's', at: '2025-01-02T03:04:05Z' })).ok,
    ).toBe(true);
    const event = decodeMessage('events', JSON.stringify({ v: 1, spoke: 'a', at: '2025-01-02T03:04:05Z', type: 'Notice', reason: 'Hi' }));
    expect(event).toMatchObject({ ok: true, value: { message: '', data: {} } });
  });

  it('rejects a payload over 256 KiB as TooLarge before parsing it', () => {
    const big = Buffer.alloc(MAX_MESSAGE_BYTES + 1, 0x20);
    expect(decodeMessage('status', big)).toEqual({
      ok: false,
      channel: 'status',
      code: 'TooLarge',
      message: `status message is ${MAX_MESSAGE_BYTES + 1} bytes, over the limit of ${MAX_MESSAGE_BYTES}`,
    });
  });

  it('counts bytes, not characters, for string payloads', () => {
    const text = 'é'.repeat(MAX_MESSAGE_BYTES / 2 + 1); // two bytes each
    expect(decodeMessage('events', text)).toMatchObject({ ok: false, code: 'TooLarge' });
  });

  it.each([
    ['an empty payload', Buffer.alloc(0)],
    ['truncated JSON', Buffer.from('{"v":1,')],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])],
    ['plain text', Buffer.from('online')],
  ])('rejects %s as InvalidJson', (_what, payload) => {
    const result = decodeMessage('presence', payload);
    expect(result).toMatchObject({ ok: false, code: 'InvalidJson' });
    expect(!result.ok && result.message).toMatch(/^presence message is not UTF-8 JSON: /);
  });

  it('rejects a schema violation as SchemaViolation naming every offending path', () => {
    const bad = { ...status, observedGeneration: -1, deployments: [{ name: 'x', observedGeneration: 2 }], extra: true };
    const result = decodeMessage('status', JSON.stringify(bad));
    expect(result).toMatchObject({ ok: false, code: 'SchemaViolation' });
    const message = !result.ok ? result.message : '';
    expect(message).toMatch(/^status message violates the schema: /);
    expect(message).toContain('observedGeneration');
    expect(message).toContain('deployments.0.phase');
    expect(message).toContain('extra');
  });

  it('rejects JSON of the wrong type at the root, naming the root', () => {
    const result = decodeMessage('commands', '[1,2]');
    expect(result).toMatchObject({ ok: false, code: 'SchemaViolation' });
    expect(!result.ok && result.message).toContain('(root)');
  });

  it('does not throw for an unknown channel passed by untyped callers', () => {
    expect(decodeMessage('bogus' as never, '{}')).toMatchObject({ ok: false, code: 'SchemaViolation' });
  });
});
