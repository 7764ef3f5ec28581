/**
 * A small parser for the Prometheus text exposition format (0.0.4), enough
 * to read inference servers and the DCGM exporter: HELP and TYPE comments,
 * labels with escapes, special floats and optional timestamps. Bad lines are
 * reported with their number and skipped; nothing is thrown.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  name: string;
  labels: Readonly<Record<string, string>>;
  value: number;
  timestampMs: number | null;
}

export interface ParsedExposition {
  samples: Sample[];
  /** Declared types by family name. */
  types: ReadonlyMap<string, MetricType>;
  help: ReadonlyMap<string, string>;
  errors: string[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const TYPES = new Set<MetricType>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
/** A scrape with thousands of broken lines needs only the first few described. */
const MAX_ERRORS = 20;

export function parsePrometheusText(text: string): ParsedExposition {
  const samples: Sample[] = [];
  const types = new Map<string, MetricType>();
  const help = new Map<string, string>();
  const errors: string[] = [];
  let errorCount = 0;
  const fail = (lineNo: number, message: string): void => {
    errorCount += 1;
    if (errors.length < MAX_ERRORS) errors.push(`line ${lineNo}: ${message}`);
  };

  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i += 1) {
    const lineNo = i + 1;
    const line = (lines[i] ?? '').replace(/\r$/, '');
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^#\s*(HELP|TYPE)\s+(\S+)(?:\s+(.*))?$/.exec(line);
      if (!m) continue; // plain comment
      const [, kind, name = '', rest = ''] = m;
      if (!NAME.test(name) || NAME.exec(name)?.[0] !== name) {
        fail(lineNo, `invalid metric name "${name}" in ${kind}`);
      } else if (kind === 'TYPE') {
        const type = rest.trim() as MetricType;
        if (!TYPES.has(type)) fail(lineNo, `unknown metric type "${rest.trim()}" for ${name}`);
        else types.set(name, type);
      } else {
        help.set(name, rest.replace(/\\(\\|n)/g, (_, c: string) => (c === 'n' ? '\n' : '\\')));
      }
      continue;
    }
    const parsed = parseSampleLine(line);
    if (typeof parsed === 'string') fail(lineNo, `${parsed}: ${truncate(line, 120)}`);
    else samples.push(parsed);
  }
  if (errorCount > errors.length) errors.push(`... and ${errorCount - errors.length} more malformed lines`);
  return { samples, types, help, errors };
}

/** Returns the sample or a description of what is wrong with the line. */
function parseSampleLine(line: string): Sample | string {
  let pos = 0;
  const nameMatch = NAME.exec(line);
  if (!nameMatch) return 'expected a metric name';
  const name = nameMatch[0];
  pos = name.length;
  const labels: Record<string, string> = {};
  if (line[pos] === '{') {
    pos += 1;
    for (;;) {
      pos = skipSpaces(line, pos);
      if (line[pos] === '}') {
        pos += 1;
        break;
      }
      const labelMatch = LABEL_NAME.exec(line.slice(pos));
      if (!labelMatch) return 'expected a label name';
      const labelName = labelMatch[0];
      pos = skipSpaces(line, pos + labelName.length);
      if (line[pos] !== '=') return `expected "=" after label ${labelName}`;
      pos = skipSpaces(line, pos + 1);
      if (line[pos] !== '"') return `expected a quoted value for label ${labelName}`;
      pos += 1;
      let value = '';
      let closed = false;
      while (pos < line.length) {
        const c = line[pos];
        if (c === '\\') {
          const next = line[pos + 1];
          if (next === 'n') value += '\n';
          else if (next === '\\' || next === '"') value += next;
          else return `invalid escape in label ${labelName}`;
          pos += 2;
        } else if (c === '"') {
          closed = true;
          pos += 1;
          break;
        } else {
          value += c;
          pos += 1;
        }
      }
      if (!closed) return `unterminated value for label ${labelName}`;
      if (Object.hasOwn(labels, labelName)) return `duplicate label ${labelName}`;
      labels[labelName] = value;
      pos = skipSpaces(line, pos);
      if (line[pos] === ',') {
        pos += 1;
        continue;
      }
      if (line[pos] === '}') {
        pos += 1;
        break;
      }
      return 'expected "," or "}" in labels';
    }
  }
  const rest = line.slice(pos).trim().split(/\s+/);
  if (rest.length === 0 || rest[0] === '') return 'missing value';
  if (rest.length > 2) return 'unexpected text after the timestamp';
  const value = parseFloatStrict(rest[0] ?? '');
  if (value === null) return `invalid value "${rest[0]}"`;
  let timestampMs: number | null = null;
  if (rest[1] !== undefined) {
    if (!/^-?\d+$/.test(rest[1])) return `invalid timestamp "${rest[1]}"`;
    timestampMs = Number(rest[1]);
  }
  return { name, labels, value, timestampMs };
}

function skipSpaces(line: string, pos: number): number {
  while (line[pos] === ' ' || line[pos] === '\t') pos += 1;
  return pos;
}

function parseFloatStrict(s: string): number | null {
  switch (s.toLowerCase()) {
    case 'nan':
      return Number.NaN;
    case '+inf':
    case 'inf':
      return Number.POSITIVE_INFINITY;
    case '-inf':
      return Number.NEGATIVE_INFINITY;
  }
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) return null;
  return Number(s);
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max)}...`;
}

/** Whether every `match` label is present with that value. */
export function labelsMatch(labels: Readonly<Record<string, string>>, match: Readonly<Record<string, string>>): boolean {
  return Object.entries(match).every(([k, v]) => labels[k] === v);
}

/** Sum of the samples called `name` whose labels include `match`; null when there are none. */
export function sumSamples(samples: readonly Sample[], name: string, match: Readonly<Record<string, string>> = {}): number | null {
  let found = false;
  let total = 0;
  for (const s of samples) {
    if (s.name !== name || !labelsMatch(s.labels, match)) continue;
    found = true;
    total += s.value;
  }
  return found ? total : null;
}
