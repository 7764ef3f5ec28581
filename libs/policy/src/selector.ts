/**
 * Label selectors with Kubernetes semantics: the string syntax used by
 * `GET /api/v1/spokes?selector=` and `--selector`, and the structured
 * `{matchLabels, matchExpressions}` form used in Placement YAML. Both become the
 * same `Selector`, so the hub, the CLI and placement evaluation agree on what a
 * selector means.
 */

export type Operator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist' | 'Gt' | 'Lt';
export const OPERATORS: readonly Operator[] = ['In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt'];

export interface Requirement {
  key: string;
  operator: Operator;
  values: string[];
}

export interface Selector {
  requirements: Requirement[];
}

export interface LabelSelectorSpec {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: Operator; values?: string[] }[];
}

/**
 * A selector that cannot be parsed or is not valid. `column` (1-based) is set
 * for the string syntax, `path` for the structured form, so callers can point
 * at the exact place.
 */
export class SelectorError extends Error {
  override readonly name = 'SelectorError';
  constructor(
    message: string,
    readonly column?: number,
    readonly expected?: string,
    readonly path: (string | number)[] = [],
  ) {
    super(message);
  }
}

/* ------------------------------------------------------------ validation */

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
// As Go strconv.ParseInt in Kubernetes: leading zeros and "-0" are integers too.
const INTEGER = /^-?[0-9]+$/;

/** Why `key` is not a valid label key, or undefined when it is. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined) {
    if (prefix.length === 0) return `label key "${key}" has an empty prefix before "/"`;
    if (prefix.length > 253) return `label key prefix of "${key}" must be 253 characters or fewer`;
    if (!DNS_SUBDOMAIN.test(prefix)) {
      return `label key prefix "${prefix}" must be a DNS subdomain: lower-case letters, digits, "-" and "."`;
    }
  }
  if (name.length === 0) return `label key "${key}" has an empty name`;
  if (name.length > 63) return `label key name "${name}" must be 63 characters or fewer`;
  if (!QUALIFIED_NAME.test(name)) {
    return `label key name "${name}" must consist of letters, digits, "-", "_" or ".", and start and end with a letter or digit`;
  }
  return undefined;
}

/** Why `value` is not a valid label value, or undefined when it is (empty is valid). */
export function labelValueProblem(value: string): string | undefined {
  if (value.length === 0) return undefined;
  if (value.length > 63) return `label value "${value}" must be 63 characters or fewer`;
  if (!QUALIFIED_NAME.test(value)) {
    return `label value "${value}" must consist of letters, digits, "-", "_" or ".", and start and end with a letter or digit`;
  }
  return undefined;
}

/**
 * Why a requirement is not valid, with the offending field relative to the
 * requirement (`key`, `values`, `values.1`), or undefined when it is valid.
 */
export function requirementProblem(r: Requirement): { path: (string | number)[]; message: string } | undefined {
  const keyProblem = labelKeyProblem(r.key);
  if (keyProblem) return { path: ['key'], message: keyProblem };
  switch (r.operator) {
    case 'In':
    case 'NotIn':
      if (r.values.length === 0) return { path: ['values'], message: `operator ${r.operator} needs at least one value` };
      for (const [i, v] of r.values.entries()) {
        const p = labelValueProblem(v);
        if (p) return { path: ['values', i], message: p };
      }
      return undefined;
    case 'Exists':
    case 'DoesNotExist':
      if (r.values.length !== 0) return { path: ['values'], message: `operator ${r.operator} takes no values` };
      return undefined;
    case 'Gt':
    case 'Lt': {
      if (r.values.length !== 1) return { path: ['values'], message: `operator ${r.operator} needs exactly one value` };
      const v = r.values[0] as string;
      if (!INTEGER.test(v)) return { path: ['values', 0], message: `operator ${r.operator} needs an integer value, got "${v}"` };
      return undefined;
    }
    default:
      return { path: ['operator'], message: `unknown operator "${String(r.operator)}"; expected one of ${OPERATORS.join(', ')}` };
  }
}

/* ---------------------------------------------------------------- parsing */

type TokenKind = 'ident' | '!' | '=' | '==' | '!=' | '(' | ')' | ',' | '>' | '<' | 'end';
interface Token {
  kind: TokenKind;
  text: string;
  /** 0-based offset into the selector text. */
  at: number;
}

const SYMBOLS: readonly TokenKind[] = ['==', '!=', '!', '=', '(', ')', ',', '>', '<'];
const isSpace = (c: string): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r';
const isSpecial = (c: string): boolean => '!=(),<>'.includes(c) || isSpace(c);

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (isSpace(c)) {
      i++;
      continue;
    }
    const symbol = SYMBOLS.find((s) => text.startsWith(s, i));
    if (symbol) {
      tokens.push({ kind: symbol, text: symbol, at: i });
      i += symbol.length;
      continue;
    }
    const start = i;
    while (i < text.length && !isSpecial(text[i] as string)) i++;
    tokens.push({ kind: 'ident', text: text.slice(start, i), at: start });
  }
  tokens.push({ kind: 'end', text: '', at: text.length });
  return tokens;
}

const describe = (t: Token): string => (t.kind === 'end' ? 'end of selector' : `"${t.text}"`);

/**
 * Parse the Kubernetes label selector string syntax, e.g.
 * `region=eu,gpu.product in (L40S,H100),!quarantined`. The empty string is the
 * selector that matches everything. Throws SelectorError with the 1-based
 * column of the first problem and what was expected there.
 */
export function parseSelector(text: string): Selector {
  const tokens = tokenize(text);
  let pos = 0;
  const peek = (): Token => tokens[pos] as Token;
  const next = (): Token => tokens[pos++] as Token;
  const fail = (t: Token, expected: string, detail?: string): never => {
    const column = t.at + 1;
    throw new SelectorError(
      `selector column ${column}: ${detail ?? `expected ${expected}, found ${describe(t)}`}`,
      column,
      expected,
    );
  };

  const key = (): string => {
    const t = next();
    if (t.kind !== 'ident') fail(t, 'a label key');
    const problem = labelKeyProblem(t.text);
    if (problem) fail(t, 'a label key', problem);
    return t.text;
  };
  const value = (allowEmpty: boolean): string => {
    const t = peek();
    if (t.kind !== 'ident') {
      // As in Kubernetes, `a=` and `a in (x,)` mean the empty value.
      if (allowEmpty && (t.kind === ',' || t.kind === ')' || t.kind === 'end')) return '';
      return fail(t, 'a label value');
    }
    pos++;
    const problem = labelValueProblem(t.text);
    if (problem) fail(t, 'a label value', problem);
    return t.text;
  };
  const integer = (): string => {
    const t = next();
    if (t.kind !== 'ident' || !INTEGER.test(t.text)) fail(t, 'an integer');
    return t.text;
  };
  const valueSet = (): string[] => {
    const open = next();
    if (open.kind !== '(') fail(open, '"("');
    const values = [value(true)];
    while (peek().kind === ',') {
      pos++;
      values.push(value(true));
    }
    const close = next();
    if (close.kind !== ')') fail(close, '"," or ")"');
    return values;
  };

  const requirement = (): Requirement => {
    if (peek().kind === '!') {
      pos++;
      return { key: key(), operator: 'DoesNotExist', values: [] };
    }
    const k = key();
    const t = peek();
    switch (t.kind) {
      case ',':
      case 'end':
        return { key: k, operator: 'Exists', values: [] };
      case '=':
      case '==':
        pos++;
        return { key: k, operator: 'In', values: [value(true)] };
      case '!=':
        pos++;
        return { key: k, operator: 'NotIn', values: [value(true)] };
      case '>':
        pos++;
        return { key: k, operator: 'Gt', values: [integer()] };
      case '<':
        pos++;
        return { key: k, operator: 'Lt', values: [integer()] };
      case 'ident':
        if (t.text === 'in' || t.text === 'notin') {
          pos++;
          return { key: k, operator: t.text === 'in' ? 'In' : 'NotIn', values: valueSet() };
        }
        break;
      default:
        break;
    }
    return fail(t, 'one of "=", "==", "!=", ">", "<", "in", "notin", "," or end of selector');
  };

  const requirements: Requirement[] = [];
  if (peek().kind === 'end') return { requirements };
  requirements.push(requirement());
  while (peek().kind !== 'end') {
    const t = next();
    if (t.kind !== ',') fail(t, '"," or end of selector');
    requirements.push(requirement());
  }
  return { requirements };
}

/**
 * Build a Selector from the structured form. matchLabels come first, in key
 * order, then matchExpressions in their order. Throws SelectorError whose
 * `path` names the bad field (`matchExpressions.0.values`).
 */
export function selectorFromSpec(spec: LabelSelectorSpec): Selector {
  const requirements: Requirement[] = [];
  for (const k of Object.keys(spec.matchLabels ?? {}).sort()) {
    const v = (spec.matchLabels as Record<string, string>)[k] as string;
    const keyProblem = labelKeyProblem(k);
    if (keyProblem) throw new SelectorError(keyProblem, undefined, 'a label key', ['matchLabels', k]);
    const valueProblem = labelValueProblem(v);
    if (valueProblem) throw new SelectorError(valueProblem, undefined, 'a label value', ['matchLabels', k]);
    requirements.push({ key: k, operator: 'In', values: [v] });
  }
  for (const [i, e] of (spec.matchExpressions ?? []).entries()) {
    const r: Requirement = { key: e.key, operator: e.operator, values: [...(e.values ?? [])] };
    const problem = requirementProblem(r);
    if (problem) throw new SelectorError(problem.message, undefined, undefined, ['matchExpressions', i, ...problem.path]);
    requirements.push(r);
  }
  return { requirements };
}

/* --------------------------------------------------------------- matching */

/**
 * Compile a selector into a predicate once, so evaluating it over a large fleet
 * does no per-spoke set building or integer parsing of the requirement side.
 */
export function compileSelector(selector: Selector): (labels: Readonly<Record<string, string>>) => boolean {
  const has = (labels: Readonly<Record<string, string>>, key: string): boolean => Object.hasOwn(labels, key);
  const checks = selector.requirements.map((r): ((labels: Readonly<Record<string, string>>) => boolean) => {
    const { key } = r;
    switch (r.operator) {
      case 'In': {
        const set = new Set(r.values);
        return (l) => has(l, key) && set.has(l[key] as string);
      }
      case 'NotIn': {
        // Kubernetes semantics: a spoke without the key satisfies NotIn (and !=).
        const set = new Set(r.values);
        return (l) => !has(l, key) || !set.has(l[key] as string);
      }
      case 'Exists':
        return (l) => has(l, key);
      case 'DoesNotExist':
        return (l) => !has(l, key);
      case 'Gt':
      case 'Lt': {
        const bound = BigInt(r.values[0] as string);
        const gt = r.operator === 'Gt';
        return (l) => {
          if (!has(l, key)) return false;
          const v = l[key] as string;
          if (!INTEGER.test(v)) return false;
          const n = BigInt(v);
          return gt ? n > bound : n < bound;
        };
      }
      default:
        throw new SelectorError(`unknown operator "${String(r.operator)}"`);
    }
  });
  return (labels) => checks.every((check) => check(labels));
}

/** Whether the labels satisfy every requirement of the selector. */
export function matches(selector: Selector, labels: Readonly<Record<string, string>>): boolean {
  return compileSelector(selector)(labels);
}

/* ------------------------------------------------------------- formatting */

/** The string syntax of a selector; `parseSelector(formatSelector(s))` gives `s` back. */
export function formatSelector(selector: Selector): string {
  return selector.requirements
    .map((r) => {
      switch (r.operator) {
        case 'In':
          return r.values.length === 1 ? `${r.key}=${r.values[0]}` : `${r.key} in (${r.values.join(',')})`;
        case 'NotIn':
          return r.values.length === 1 ? `${r.key}!=${r.values[0]}` : `${r.key} notin (${r.values.join(',')})`;
        case 'Exists':
          return r.key;
        case 'DoesNotExist':
          return `!${r.key}`;
        case 'Gt':
          return `${r.key}>${r.values[0]}`;
        case 'Lt':
          return `${r.key}<${r.values[0]}`;
        default:
          throw new SelectorError(`unknown operator "${String(r.operator)}"`);
      }
    })
    .join(',');
}
