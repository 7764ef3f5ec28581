import { isJsonObject, type JsonObject, type JsonValue } from './json.js';
import { labelValueErrors, qualifiedNameErrors } from './label-rules.js';
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

/** labels.NewRequirement's checks, with the real parser's messages (`key: Invalid value: ...`, `values[0][key]: Invalid value: ...`). */
function validateKey(key: string): void {
  const errs = qualifiedNameErrors(key);
  if (errs.length > 0) {
    throw badRequest(`unable to parse requirement: key: Invalid value: ${JSON.stringify(key)}: ${errs.join('; ')}`);
  }
}

function validateValue(key: string, value: string, index: number): void {
  const errs = labelValueErrors(value);
  if (errs.length > 0) {
    throw badRequest(`unable to parse requirement: values[${index}][${key}]: Invalid value: ${JSON.stringify(value)}: ${errs.join('; ')}`);
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
      values.forEach((v, i) => validateValue(m![1]!, v, i));
      requirements.push({ key: m[1]!, op: m[2] as 'in' | 'notin', values });
    } else if ((m = /^([^\s=!<>(),]+)\s*(==|=|!=)\s*([^\s=!<>(),]*)$/.exec(part))) {
      validateKey(m[1]!);
      validateValue(m[1]!, m[3]!, 0);
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
