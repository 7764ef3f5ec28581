/**
 * The validator's rules in JSON Schema terms, attached to the zod schemas
 * with `.meta()` so that `flotilla schema` (and the hub's OpenAPI document)
 * carry them. The zod schemas keep their own checks and messages; these
 * patterns say the same thing to editors and JSON Schema tools, and the
 * fixture tests hold the two to the same verdicts.
 */

/** DNS subdomain (label key prefix): lower-case letters, digits, "-" and ".". */
const DNS_SUBDOMAIN = '[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*';
/** Letters, digits, "-", "_", ".", starting and ending with a letter or digit. */
const QUALIFIED_NAME = '(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]';

/** `[prefix/]name`: prefix a DNS subdomain of at most 253 characters, name at most 63 (as labelKeyProblem). */
export const LABEL_KEY_PATTERN = `^(?:(?=[^/]{1,253}/)${DNS_SUBDOMAIN}/)?(?=[^/]{1,63}$)${QUALIFIED_NAME}$`;
/** Empty, or a qualified name of at most 63 characters (as labelValueProblem). */
export const LABEL_VALUE_PATTERN = `^(?:${QUALIFIED_NAME})?$`;

export const labelKeyJson = { type: 'string', pattern: LABEL_KEY_PATTERN, maxLength: 317 } as const;
export const labelValueJson = { type: 'string', pattern: LABEL_VALUE_PATTERN, maxLength: 63 } as const;

/** A map of Kubernetes-style labels. */
export const labelsJson = {
  type: 'object',
  propertyNames: labelKeyJson,
  additionalProperties: labelValueJson,
} as const;

/** As `requirementProblem`: what each operator needs of `values`. */
export const requirementRulesJson = {
  allOf: [
    {
      if: { type: 'object', properties: { operator: { enum: ['In', 'NotIn'] } }, required: ['operator'] },
      then: { type: 'object', required: ['values'], properties: { values: { type: 'array', minItems: 1, items: labelValueJson } } },
    },
    {
      if: { type: 'object', properties: { operator: { enum: ['Exists', 'DoesNotExist'] } }, required: ['operator'] },
      then: { type: 'object', properties: { values: { type: 'array', maxItems: 0 } } },
    },
    {
      if: { type: 'object', properties: { operator: { enum: ['Gt', 'Lt'] } }, required: ['operator'] },
      then: { type: 'object', required: ['values'], properties: { values: { type: 'array', minItems: 1, maxItems: 1, items: { type: 'string', pattern: '^-?[0-9]+$' } } } },
    },
  ],
} as const;

/** A Go-style duration with at least one non-zero digit, i.e. longer than zero. */
export const POSITIVE_DURATION_PATTERN = '^(?=.*[1-9])(?:[0-9]+(?:ms|s|m|h))+$';

/**
 * Kubernetes quantities, written as strings or as numbers. A number counts as
 * the decimal text it prints as, so numbers in exponent form (1e-7, 1e21) and
 * with more than 16 characters are refused by `flotilla validate` though JSON
 * Schema cannot tell; writing quantities as strings avoids the question.
 */
export const quantityJson = (pattern: string, example: string) => ({
  description: `a quantity like ${example}`,
  anyOf: [
    { type: 'string', maxLength: 16, pattern },
    { type: 'number', minimum: 0, exclusiveMaximum: 1e16 },
  ],
});

/** A trainer is built in or a container image, never both; `command` only with an image. */
export const trainerRulesJson = {
  oneOf: [
    { type: 'object', required: ['builtin'] },
    { type: 'object', required: ['image'] },
    { type: 'object', required: ['command'], not: { anyOf: [{ required: ['builtin'] }, { required: ['image'] }] } },
  ],
  dependentSchemas: { builtin: { not: { type: 'object', required: ['command'] } } },
} as const;

/**
 * Time zones: the IANA names this runtime knows (`Intl.supportedValuesOf`,
 * which lists some zones under their former names) plus UTC and the current
 * names of renamed zones. Validation accepts exactly these, so an editor and
 * `flotilla validate` agree; an alias such as US/Eastern is refused with the
 * name to use instead.
 */
const RENAMED_ZONES = [
  'UTC',
  'Etc/UTC',
  'GMT',
  'Etc/GMT',
  'Asia/Kolkata',
  'Europe/Kyiv',
  'Asia/Ho_Chi_Minh',
  'Asia/Kathmandu',
  'Asia/Yangon',
  'Asia/Thimphu',
  'Asia/Ulaanbaatar',
  'America/Nuuk',
  'Atlantic/Faroe',
  'Pacific/Chuuk',
  'Pacific/Pohnpei',
  'Pacific/Kanton',
  'America/Atikokan',
  'America/Argentina/Buenos_Aires',
  'America/Argentina/Catamarca',
  'America/Argentina/Cordoba',
  'America/Argentina/Jujuy',
  'America/Argentina/Mendoza',
  'America/Indiana/Indianapolis',
  'America/Kentucky/Louisville',
];

const intlKnows = (tz: string): boolean => {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
};

export const TIME_ZONES: readonly string[] = [...new Set([...Intl.supportedValuesOf('timeZone'), ...RENAMED_ZONES.filter(intlKnows)])].sort();
const KNOWN_ZONES = new Set(TIME_ZONES);

/** Why `tz` is not an accepted time zone, or undefined when it is. */
export function timeZoneProblem(tz: string): string | undefined {
  if (KNOWN_ZONES.has(tz)) return undefined;
  if (intlKnows(tz)) {
    const canonical = new Intl.DateTimeFormat('en', { timeZone: tz }).resolvedOptions().timeZone;
    if (canonical !== tz && KNOWN_ZONES.has(canonical)) return `time zone "${tz}" is an alias; write "${canonical}"`;
  }
  return `unknown time zone "${tz}"; use an IANA name like Europe/Paris`;
}

/** Rules of `flotilla validate` that JSON Schema cannot state; named in the schema's descriptions. */
export const BEYOND_JSON_SCHEMA = [
  'replicas.max must be >= replicas.min (also in schedule windows)',
  'rollout.progressDeadline must be longer than rollout.minSuccessTime',
  'a schedule window must not start and end at the same time',
  'a model lists each version once',
  'names are unique per kind across the files, and references (models, versions, placements) must exist',
] as const;
