import { isJsonObject, type JsonValue } from './json.js';
import { fieldInvalid, fieldRequired, type StatusCause } from './status.js';

/**
 * Label keys and values as k8s.io/apimachinery/pkg/util/validation checks
 * them, with its messages word for word: a value is at most 63 characters of
 * `(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?`; a key is a qualified name,
 * an optional DNS-subdomain prefix and `/` before a name of at most 63
 * characters. The real server applies them to metadata.labels, selectors'
 * matchLabels and matchExpressions, Service selectors and pod nodeSelectors,
 * reporting the map's path (not the key's) as the field.
 */

const LABEL_VALUE_FMT = '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?';
const LABEL_VALUE_RE = new RegExp(`^${LABEL_VALUE_FMT}$`);
const LABEL_VALUE_MSG =
  "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_FMT = '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]';
const QUALIFIED_NAME_RE = new RegExp(`^${QUALIFIED_NAME_FMT}$`);
const QUALIFIED_NAME_MSG = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT = '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*';
const DNS1123_SUBDOMAIN_RE = new RegExp(`^${DNS1123_SUBDOMAIN_FMT}$`);
const DNS1123_SUBDOMAIN_MSG =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

/** validation.RegexError: the message, examples and the regex, spaced exactly as the Go original. */
function regexError(msg: string, fmt: string, ...examples: string[]): string {
  if (examples.length === 0) return `${msg} (regex used for validation is '${fmt}')`;
  let out = `${msg} (e.g. `;
  examples.forEach((example, i) => {
    if (i > 0) out += ' or ';
    out += `'${example}', `;
  });
  return `${out}regex used for validation is '${fmt}')`;
}

const maxLenError = (n: number): string => `must be no more than ${n} characters`;

/** validation.IsValidLabelValue. */
export function labelValueErrors(value: string): string[] {
  const errs: string[] = [];
  if (value.length > 63) errs.push(maxLenError(63));
  if (!LABEL_VALUE_RE.test(value)) errs.push(regexError(LABEL_VALUE_MSG, LABEL_VALUE_FMT, 'MyValue', 'my_value', '12345'));
  return errs;
}

/** validation.IsDNS1123Subdomain. */
function dns1123SubdomainErrors(value: string): string[] {
  const errs: string[] = [];
  if (value.length > 253) errs.push(maxLenError(253));
  if (!DNS1123_SUBDOMAIN_RE.test(value)) errs.push(regexError(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, 'example.com'));
  return errs;
}

/** validation.IsQualifiedName: label keys, annotation keys, selector keys. */
export function qualifiedNameErrors(value: string): string[] {
  const errs: string[] = [];
  const parts = value.split('/');
  let name: string;
  if (parts.length === 1) {
    name = parts[0]!;
  } else if (parts.length === 2) {
    const prefix = parts[0]!;
    name = parts[1]!;
    if (prefix.length === 0) errs.push('prefix part must be non-empty');
    else errs.push(...dns1123SubdomainErrors(prefix).map((m) => `prefix part ${m}`));
  } else {
    return [
      `a qualified name ${regexError(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, 'MyName', 'my.name', '123-abc')} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')`,
    ];
  }
  if (name.length === 0) errs.push('name part must be non-empty');
  else if (name.length > 63) errs.push(`name part ${maxLenError(63)}`);
  if (!QUALIFIED_NAME_RE.test(name)) errs.push(`name part ${regexError(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, 'MyName', 'my.name', '123-abc')}`);
  return errs;
}

/** ValidateLabels: every key a qualified name, every value a label value, all reported at `field`. Keys in sorted order, for stable messages. */
export function validateLabelMap(field: string, value: JsonValue | undefined, causes: StatusCause[]): void {
  if (value === undefined || value === null) return;
  if (!isJsonObject(value)) {
    causes.push(fieldInvalid(field, value, 'must be a map of strings'));
    return;
  }
  for (const key of Object.keys(value).sort()) {
    for (const msg of qualifiedNameErrors(key)) causes.push(fieldInvalid(field, key, msg));
    const v = value[key];
    if (typeof v !== 'string') {
      causes.push(fieldInvalid(field, v ?? null, 'must be a string'));
      continue;
    }
    for (const msg of labelValueErrors(v)) causes.push(fieldInvalid(field, v, msg));
  }
}

/** ValidateLabelSelector: matchLabels as labels, matchExpressions' keys, operators and values. */
export function validateLabelSelector(field: string, selector: JsonValue | undefined, causes: StatusCause[]): void {
  if (!isJsonObject(selector)) return;
  validateLabelMap(`${field}.matchLabels`, selector['matchLabels'], causes);
  const expressions = selector['matchExpressions'];
  if (!Array.isArray(expressions)) return;
  expressions.forEach((e, i) => {
    const at = `${field}.matchExpressions[${i}]`;
    if (!isJsonObject(e)) return;
    const op = e['operator'];
    const values = Array.isArray(e['values']) ? e['values'] : [];
    if (op === 'In' || op === 'NotIn') {
      if (values.length === 0) causes.push({ ...fieldRequired(`${at}.values`), message: "Required value: must be specified when `operator` is 'In' or 'NotIn'" });
    } else if (op === 'Exists' || op === 'DoesNotExist') {
      if (values.length > 0) causes.push({ reason: 'FieldValueForbidden', message: "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'", field: `${at}.values` });
    } else {
      causes.push(fieldInvalid(`${at}.operator`, op ?? null, 'not a valid selector operator'));
    }
    const key = typeof e['key'] === 'string' ? e['key'] : '';
    for (const msg of qualifiedNameErrors(key)) causes.push(fieldInvalid(`${at}.key`, key, msg));
    values.forEach((v, j) => {
      const s = typeof v === 'string' ? v : String(v);
      for (const msg of labelValueErrors(s)) causes.push(fieldInvalid(`${at}.values[${j}]`, s, msg));
    });
  });
}
