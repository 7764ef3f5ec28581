import fc from 'fast-check';
import { Gauge, Registry } from 'prom-client';
import { parsePrometheusText, sumSamples } from './prometheus-text.js';

describe('parsePrometheusText', () => {
  it('reads HELP, TYPE, labelled samples, special values and timestamps', () => {
    const text = [
      '# HELP nv_inference_request_success Number of successful inference requests, all batch sizes',
      '# TYPE nv_inference_request_success counter',
      'nv_inference_request_success{model="bridge-defects",version="1"} 1027',
      'nv_inference_request_success{model="other",version="2",} 3 1700000000000',
      '# a plain comment',
      '',
      'up 1',
      'temp{gpu="0"} NaN',
      'limit +Inf',
      'floor -Inf',
      'tiny 1.5e-3',
    ].join('\n');

    const parsed = parsePrometheusText(text);

    expect(parsed.errors).toEqual([]);
    expect(parsed.types.get('nv_inference_request_success')).toBe('counter');
    expect(parsed.help.get('nv_inference_request_success')).toBe('Number of successful inference requests, all batch sizes');
    expect(parsed.samples[0]).toEqual({
      name: 'nv_inference_request_success',
      labels: { model: 'bridge-defects', version: '1' },
      value: 1027,
      timestampMs: null,
    });
    expect(parsed.samples[1]).toMatchObject({ labels: { model: 'other', version: '2' }, value: 3, timestampMs: 1700000000000 });
    expect(parsed.samples.map((s) => s.value).slice(2)).toEqual([1, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0.0015]);
    expect(sumSamples(parsed.samples, 'nv_inference_request_success')).toBe(1030);
    expect(sumSamples(parsed.samples, 'nv_inference_request_success', { model: 'other' })).toBe(3);
    expect(sumSamples(parsed.samples, 'absent')).toBeNull();
  });

  it('unescapes backslash, quote and newline in label values', () => {
    const parsed = parsePrometheusText('m{path="C:\\\\models\\\\a",msg="say \\"hi\\"\\nbye"} 1');
    expect(parsed.samples[0]?.labels).toEqual({ path: 'C:\\models\\a', msg: 'say "hi"\nbye' });
  });

  it('reports each malformed line with its number and keeps the good ones', () => {
    const text = ['good 1', 'bad{model="x" 2', '9starts_with_digit 1', 'novalue', 'm{a="1",a="2"} 1', 'm 1 2 3', 'm abc', '# TYPE m flavour', 'also_good 2'].join('\n');

    const parsed = parsePrometheusText(text);

    expect(parsed.samples.map((s) => s.name)).toEqual(['good', 'also_good']);
    expect(parsed.errors).toEqual([
      expect.stringMatching(/^line 2: expected "," or "}" in labels/),
      expect.stringMatching(/^line 3: expected a metric name/),
      expect.stringMatching(/^line 4: missing value/),
      expect.stringMatching(/^line 5: duplicate label a/),
      expect.stringMatching(/^line 6: unexpected text after the timestamp/),
      expect.stringMatching(/^line 7: invalid value "abc"/),
      expect.stringMatching(/^line 8: unknown metric type "flavour"/),
    ]);
  });

  it('describes only the first twenty problems of a garbage scrape', () => {
    const parsed = parsePrometheusText(Array.from({ length: 100 }, () => '{}').join('\n'));
    expect(parsed.errors).toHaveLength(21);
    expect(parsed.errors.at(-1)).toBe('... and 80 more malformed lines');
  });

  it('reads back whatever prom-client writes (label values and numbers of any kind)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.string({ maxLength: 20 }), fc.double({ noNaN: true })), { minLength: 1, maxLength: 8 }),
        async (series) => {
          const registry = new Registry();
          const gauge = new Gauge({ name: 'prop_gauge', help: 'property test', labelNames: ['v'], registers: [registry] });
          const expected = new Map<string, number>();
          for (const [label, value] of series) {
            gauge.set({ v: label }, value);
            expected.set(label, value);
          }
          const parsed = parsePrometheusText(await registry.metrics());
          if (parsed.errors.length > 0) return false;
          const got = new Map(parsed.samples.map((s) => [s.labels.v ?? '', s.value]));
          return [...expected].every(([k, v]) => got.get(k) === v);
        },
      ),
      { numRuns: 200 },
    );
  });
});
