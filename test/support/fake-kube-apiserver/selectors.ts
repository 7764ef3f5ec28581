import { isJsonObject, type JsonObject, type JsonValue } from './json.js';
import { badRequest } from './status.js';

/**
 * Label and field selectors with the grammar of k8s.io/apimachinery/pkg/labels
 * and pkg/fields: equality (`a=b`, `a==b`, `a!=b`), set-based (`a in (x,y)`,
 * `a notin (x)`, `a`, `!a`) and numeric (`a>1`, `a<3`) requirements, joined by
 * commas. Parse errors become 400 BadRequest as from the real server.
 */
export type LabelRequirement =
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | 'doesnotexist' }
  | { key: string; op: 'gt' | 'lt'; value: number };

const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function validateKey(key: string): void {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
    throw badRequest(`unable to parse requirement: invalid label key "${key}": prefix part must be a DNS subdomain`);
  }
  if (name.length === 0 || name.length > 63 || !NAME.test(name)) {
    throw badRequest(
      `unable to parse requirement: invalid label key "${key}": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`,
    );
  }
}

function validateValue(value: string): void {
  if (value.length > 63 || (value.length > 0 && !NAME.test(value))) {
    throw badRequest(
      `unable to parse requirement: values[0][${value}]: Invalid value: "${value}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`,
    );
  }
}

/** Splits on commas that are not inside a `( ... )` value set. */
function splitRequirements(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (depth < 0) throw badRequest(`unable to parse requirement: unbalanced ")" in "${selector}"`);
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  if (depth !== 0) throw badRequest(`unable to parse requirement: unclosed "(" in "${selector}"`);
  parts.push(current);
  return parts.map((p) => p.trim());
}

export function parseLabelSelector(selector: string | null | undefined): LabelRequirement[] {
  if (selector === undefined || selector === null || selector.trim() === '') return [];
  const requirements: LabelRequirement[] = [];
  for (const part of splitRequirements(selector)) {
    if (part === '') throw badRequest(`unable to parse requirement: found '', expected: !, identifier, or 'end of string'`);
    let m: RegExpExecArray | null;
    if ((m = /^!\s*([^\s=!<>(),]+)$/.exec(part))) {
      validateKey(m[1]!);
      requirements.push({ key: m[1]!, op: 'doesnotexist' });
    } else if ((m = /^([^\s=!<>(),]+)\s+(in|notin)\s*\(([^()]*)\)$/.exec(part))) {
      validateKey(m[1]!);
      const values = m[3]!.split(',').map((v) => v.trim());
      if (values.length === 1 && values[0] === '') {
        throw badRequest(`unable to parse requirement: for '${m[2]}' operator, values set can't be empty`);
      }
      values.forEach(validateValue);
      requirements.push({ key: m[1]!, op: m[2] as 'in' | 'notin', values });
    } else if ((m = /^([^\s=!<>(),]+)\s*(==|=|!=)\s*([^\s=!<>(),]*)$/.exec(part))) {
      validateKey(m[1]!);
      validateValue(m[3]!);
      requirements.push({ key: m[1]!, op: m[2] === '!=' ? 'notin' : 'in', values: [m[3]!] });
    } else if ((m = /^([^\s=!<>(),]+)\s*([<>])\s*(-?\d+)$/.exec(part))) {
      validateKey(m[1]!);
      requirements.push({ key: m[1]!, op: m[2] === '>' ? 'gt' : 'lt', value: Number(m[3]) });
    } else if ((m = /^([^\s=!<>(),]+)$/.exec(part))) {
      validateKey(m[1]!);
      requirements.push({ key: m[1]!, op: 'exists' });
    } else {
      throw badRequest(`unable to parse requirement: couldn't parse the selector string "${selector}"`);
    }
  }
  return requirements;
}

export function matchesLabels(requirements: LabelRequirement[], labels: Record<string, string>): boolean {
  return requirements.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    const value = labels[r.key];
    switch (r.op) {
      case 'exists':
        return has;
      case 'doesnotexist':
        return !has;
      case 'in':
        return has && r.values.includes(value!);
      case 'notin':
        return !has || !r.values.includes(value!);
      case 'gt':
      case 'lt': {
        if (!has || !/^-?\d+$/.test(value!)) return false;
        return r.op === 'gt' ? Number(value) > r.value : Number(value) < r.value;
      }
    }
  });
}

export interface FieldRequirement {
  field: string;
  op: '=' | '!=';
  value: string;
}

export function parseFieldSelector(selector: string | null | undefined, supported: string[]): FieldRequirement[] {
  if (selector === undefined || selector === null || selector.trim() === '') return [];
  return selector.split(',').map((raw) => {
    const part = raw.trim();
    const m = /^([^=!]+?)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (!m) throw badRequest(`invalid selector: '${selector}'; can't understand '${part}'`);
    const field = m[1]!;
    if (!supported.includes(field)) throw badRequest(`field label not supported: ${field}`);
    return { field, op: m[2] === '!=' ? '!=' : '=', value: m[3]! };
  });
}

function fieldValue(obj: JsonObject, path: string): string {
  let cur: JsonValue | undefined = obj;
  for (const part of path.split('.')) cur = isJsonObject(cur) ? cur[part] : undefined;
  if (cur === undefined || cur === null) return '';
  return typeof cur === 'string' ? cur : JSON.stringify(cur);
}

export function matchesFields(requirements: FieldRequirement[], obj: JsonObject): boolean {
  return requirements.every((r) => (fieldValue(obj, r.field) === r.value) === (r.op === '='));
}
