import { z } from 'zod';
import {
  DesiredFineTuneJobSchema,
  ArtifactUriSchema,
  GpuProductSchema,
  DigestSchema,
  ModelRefSchema,
  ObjectNameSchema,
  ReplicasSchema,
  ScheduleSchema,
  DatasetSpecSchema,
  JobScheduleSchema,
} from '@flotilla/contracts';
import {
  BEYOND_JSON_SCHEMA,
  POSITIVE_DURATION_PATTERN,
  TIME_ZONES,
  labelKeyJson,
  labelValueJson,
  labelsJson,
  quantityJson,
  requirementRulesJson,
  timeZoneProblem,
  trainerRulesJson,
} from './json-schema-rules.js';
import { labelKeyProblem, labelValueProblem, requirementProblem } from './selector.js';

/**
 * The four policy kinds of DESIGN.md section 5. Objects are strict so that a
 * misspelt field is an error rather than a silently ignored setting; semantic
 * checks (label syntax, durations, time zones) live here too so that each
 * problem is reported with the path of the field that causes it.
 */

export const API_VERSION = 'flotilla.dev/v1' as const;
export const POLICY_KINDS = ['Model', 'Placement', 'ModelDeployment', 'FineTuneJob'] as const;
export type PolicyKind = (typeof POLICY_KINDS)[number];

/* ------------------------------------------------------------ primitives */

const LabelsSchema = z
  .record(z.string(), z.string())
  .superRefine((labels, ctx) => {
    for (const [key, value] of Object.entries(labels)) {
      const problem = labelKeyProblem(key) ?? labelValueProblem(value);
      if (problem) ctx.addIssue({ code: 'custom', message: problem, path: [key] });
    }
  })
  .meta(labelsJson);

export const MetadataSchema = z
  .object({
    name: ObjectNameSchema,
    labels: LabelsSchema.optional(),
  })
  .strict();

const DURATION = /^([0-9]+(ms|s|m|h))+$/;
const DURATION_PART = /([0-9]+)(ms|s|m|h)/g;
const UNIT_SECONDS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };

/** Seconds in a Go-style duration such as "90s", "2m" or "1h30m"; throws on anything else. */
export function parseDuration(text: string): number {
  if (!DURATION.test(text)) throw new Error(`"${text}" is not a duration like "30s", "2m" or "1h30m"`);
  let seconds = 0;
  for (const m of text.matchAll(DURATION_PART)) seconds += Number(m[1]) * (UNIT_SECONDS[m[2] as string] as number);
  return seconds;
}

const DurationSchema = z
  .string()
  .regex(DURATION, 'must be a duration like "30s", "2m" or "1h30m"')
  // zod runs this even when the pattern failed; parseDuration would throw on such text.
  .refine((d) => !DURATION.test(d) || parseDuration(d) > 0, 'must be longer than zero')
  .meta({ pattern: POSITIVE_DURATION_PATTERN, description: 'a duration longer than zero, like "30s", "2m" or "1h30m"' });

/** A duration that may be zero ("0s"). */
const NonNegativeDurationSchema = z
  .string()
  .regex(DURATION, 'must be a duration like "0s", "30s", "2m" or "1h30m"')
  .meta({ pattern: DURATION.source, description: 'a duration, zero or more, like "0s", "30s", "2m" or "1h30m"' });

// Kubernetes resource quantities; YAML users often write `cpu: 2`, so numbers are taken too.
const quantity = (pattern: RegExp, example: string) =>
  z
    .union([z.string(), z.number().nonnegative()])
    .transform((q) => String(q))
    .pipe(z.string().max(16).regex(pattern, `must be a quantity like ${example}`))
    .meta(quantityJson(pattern.source, example));
const CpuQuantity = quantity(/^([0-9]+(\.[0-9]+)?|[0-9]+m)$/, '"2", "0.5" or "500m"');
const MemoryQuantity = quantity(/^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/, '"8Gi" or "512Mi"');

export const WorkloadResourcesSchema = z
  .object({
    gpu: z.number().int().min(0).max(64).default(0),
    cpu: CpuQuantity.optional(),
    memory: MemoryQuantity.optional(),
  })
  .strict();

const ModelVersionRefSchema = z
  .object({
    name: ObjectNameSchema,
    version: z.string().min(1).max(128),
  })
  .strict();

const TimeZoneSchema = z
  .string()
  .min(1)
  .superRefine((tz, ctx) => {
    const problem = timeZoneProblem(tz);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .meta({ enum: [...TIME_ZONES], description: 'an IANA time zone name like Europe/Paris' });

const PolicyScheduleSchema = ScheduleSchema.extend({ timezone: TimeZoneSchema })
  .superRefine((schedule, ctx) => {
    for (const [i, w] of schedule.windows.entries()) {
      if (w.start === w.end) ctx.addIssue({ code: 'custom', path: ['windows', i, 'end'], message: 'window must not start and end at the same time' });
    }
  })
  .meta({ description: 'replica bounds by time of day; checked by flotilla validate only: a window does not start and end at the same time, and replicas.max >= replicas.min' });

/* ----------------------------------------------------------------- Model */

export const ModelVersionSchema = z
  .object({
    version: z.string().min(1).max(128).regex(/^[A-Za-z0-9][A-Za-z0-9._+-]*$/, 'must be a version like "1.0.0"'),
    uri: ArtifactUriSchema,
    digest: DigestSchema,
    format: ModelRefSchema.shape.format,
    sizeBytes: z.number().int().nonnegative().optional(),
    input: ModelRefSchema.shape.input,
  })
  .strict();
export type ModelVersion = z.infer<typeof ModelVersionSchema>;

const ModelSpecSchema = z
  .object({
    task: z.string().min(1).max(64).regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a task name like image-classification'),
    // A model may have no versions in YAML: CI can register them through the API.
    versions: z.array(ModelVersionSchema).default([]),
  })
  .strict()
  .superRefine((spec, ctx) => {
    const seen = new Set<string>();
    for (const [i, v] of spec.versions.entries()) {
      if (seen.has(v.version)) ctx.addIssue({ code: 'custom', path: ['versions', i, 'version'], message: `version "${v.version}" is listed twice` });
      seen.add(v.version);
    }
  })
  .meta({ description: 'checked by flotilla validate only: each version is listed once' });

/* ------------------------------------------------------------- Placement */

export const LabelSelectorSchema = z
  .object({
    matchLabels: z.record(z.string(), z.string()).meta(labelsJson).optional(),
    matchExpressions: z
      .array(
        z
          .object({
            key: z.string().meta(labelKeyJson),
            operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt']),
            values: z.array(z.string()).optional(),
          })
          .strict()
          .meta(requirementRulesJson),
      )
      .optional(),
  })
  .strict()
  .superRefine((selector, ctx) => {
    for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
      const problem = labelKeyProblem(key) ?? labelValueProblem(value);
      if (problem) ctx.addIssue({ code: 'custom', path: ['matchLabels', key], message: problem });
    }
    for (const [i, e] of (selector.matchExpressions ?? []).entries()) {
      const problem = requirementProblem({ key: e.key, operator: e.operator, values: e.values ?? [] });
      if (problem) ctx.addIssue({ code: 'custom', path: ['matchExpressions', i, ...problem.path], message: problem.message });
    }
  });

export const GpuRequirementSchema = z
  .object({
    count: z.number().int().min(1).max(64),
    memoryGiB: z.number().positive().max(1024).optional(),
    /** The full product name, as nvidia-smi reports it or as GPU Feature Discovery labels nodes (see gpu-product.ts in contracts). */
    product: GpuProductSchema.optional(),
  })
  .strict();

const PlacementSpecSchema = z
  .object({
    selector: LabelSelectorSchema,
    requirements: z.object({ gpu: GpuRequirementSchema.optional() }).strict().optional(),
    /** Values of the spoke label `data-residency` that may host this placement. */
    residency: z
      .array(z.string().refine((v) => v.length > 0 && !labelValueProblem(v), 'must be a label value like "eu"').meta({ ...labelValueJson, minLength: 1 }))
      .min(1)
      .optional(),
    maxSpokes: z.number().int().min(1).optional(),
  })
  .strict();

/* ------------------------------------------------------- ModelDeployment */

/**
 * Live health a deployment's spokes must keep: read by progressive rollouts
 * (a spoke being verified must stay within them) and, for maxErrorRatio, by
 * smart routing (a spoke over it is not routed to). One field, one default.
 */
export const RolloutGatesSchema = z
  .object({
    maxErrorRatio: z
      .number()
      .min(0)
      .max(1)
      .default(0.05)
      .describe('failed share of inference requests in a telemetry interval (0..1): a rollout fails a spoke above it, and routing sends no requests to a spoke above it'),
    maxLatencyP99Ratio: z.number().min(1).max(1000).default(2).describe('p99 latency over the same spoke’s p99 before the change: a rollout fails a spoke above it'),
    noRestarts: z.boolean().default(true).describe('a crash of the new inference server fails the spoke in a rollout'),
  })
  .strict();
export type RolloutGates = z.infer<typeof RolloutGatesSchema>;
/** The gates of a deployment that names none. */
export const DEFAULT_ROLLOUT_GATES: RolloutGates = RolloutGatesSchema.parse({});

export const RolloutSchema = z
  .object({
    strategy: z.enum(['Progressive', 'AllAtOnce']).default('Progressive'),
    /** Spokes updated at once: a count, or a percentage of the placement's spokes. */
    maxConcurrency: z
      .union([z.number().int().min(1), z.string().regex(/^(100|[1-9][0-9]?)%$/, 'must be a whole number or a percentage from "1%" to "100%"')])
      .default('25%'),
    /** Spokes matching this selector form the first wave (the canaries). */
    canary: LabelSelectorSchema.optional(),
    /** How long a spoke must stay Ready and within the gates; "0s" passes it as soon as it is Ready. */
    minSuccessTime: NonNegativeDurationSchema.default('2m'),
    progressDeadline: DurationSchema.default('10m'),
    maxFailures: z.number().int().min(0).default(0),
    /** Live health a spoke must keep while it is verified, from the telemetry its agent sends. */
    gates: RolloutGatesSchema.prefault({}),
  })
  .strict()
  .superRefine((r, ctx) => {
    // A zero progressDeadline is already refused on its own.
    if (DURATION.test(r.minSuccessTime) && DURATION.test(r.progressDeadline) && parseDuration(r.progressDeadline) > 0 && parseDuration(r.progressDeadline) <= parseDuration(r.minSuccessTime)) {
      ctx.addIssue({ code: 'custom', path: ['progressDeadline'], message: `must be longer than minSuccessTime (${r.minSuccessTime})` });
    }
  })
  .meta({ description: 'checked by flotilla validate only: progressDeadline is longer than minSuccessTime' });
export type Rollout = z.infer<typeof RolloutSchema>;

const ModelDeploymentSpecSchema = z
  .object({
    model: ModelVersionRefSchema,
    placement: ObjectNameSchema,
    runtime: z.enum(['triton', 'builtin']),
    resources: WorkloadResourcesSchema.prefault({}),
    replicas: ReplicasSchema.meta({ description: 'checked by flotilla validate only: max >= min' }).prefault({ min: 1, max: 1 }),
    schedule: PolicyScheduleSchema.optional(),
    remediation: z.enum(['enforce', 'inform']).default('enforce'),
    rollout: RolloutSchema.prefault({}),
  })
  .strict();

/* ----------------------------------------------------------- FineTuneJob */

const Hyperparameters = z.record(z.string(), z.union([z.number(), z.string(), z.boolean()]));

/** A built-in trainer, a container image (+ optional command), or a command alone (a program on the appliance, process runtime). */
const TrainerSpecSchema = z
  .object({
    builtin: z.enum(['linear-probe']).optional(),
    image: z.string().min(1).max(512).optional(),
    command: z.array(z.string()).optional(),
    hyperparameters: Hyperparameters.default({}),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.builtin === undefined && t.image === undefined && t.command === undefined) {
      ctx.addIssue({ code: 'custom', path: [], message: 'needs "builtin", "image" or "command"' });
    }
    if (t.image === undefined && t.builtin === undefined && t.command !== undefined && t.command.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['command'], message: 'a command trainer needs the program to run: a non-empty argv list' });
    }
    if (t.builtin !== undefined && t.image !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['image'], message: 'give either "builtin" or "image", not both' });
    }
    if (t.builtin !== undefined && t.command !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['command'], message: '"command" only applies to an "image" trainer' });
    }
  })
  .meta(trainerRulesJson);

const FineTuneJobSpecSchema = z
  .object({
    baseModel: ModelVersionRefSchema,
    placement: ObjectNameSchema,
    dataset: z
      .object({
        // A path on the spoke: the data is read there and never sent anywhere.
        path: z.string().min(1).max(4096).regex(/^\//, 'must be an absolute path on the spoke'),
        format: z.enum(['csv', 'jsonl', 'imagefolder']),
        labelColumn: DatasetSpecSchema.shape.labelColumn.meta({ description: 'csv/jsonl: the column (jsonl: key) holding the class label; default "label"' }),
        imageColumn: DatasetSpecSchema.shape.imageColumn.meta({ description: 'csv/jsonl: the column holding an image path relative to the dataset directory; default "image"' }),
        featureColumns: DatasetSpecSchema.shape.featureColumns.meta({ description: 'csv/jsonl: numeric feature columns; when given, each row is a feature vector instead of an image' }),
      })
      .strict()
      .superRefine((d, ctx) => {
        if (d.format === 'imagefolder') {
          for (const f of ['labelColumn', 'imageColumn', 'featureColumns'] as const) {
            if (d[f] !== undefined) ctx.addIssue({ code: 'custom', path: [f], message: `only applies to csv and jsonl datasets` });
          }
        }
      }),
    trainer: TrainerSpecSchema,
    // The same shapes the spoke receives (contracts), so the two cannot drift apart.
    evaluation: DesiredFineTuneJobSchema.shape.evaluation,
    output: DesiredFineTuneJobSchema.shape.output,
    promote: DesiredFineTuneJobSchema.shape.promote.default('manual'),
    resources: WorkloadResourcesSchema.optional(),
    timeout: z
      .string()
      .regex(DURATION, 'must be a duration like "30m", "2h" or "1h30m"')
      .refine((t) => !DURATION.test(t) || (parseDuration(t) >= 1 && parseDuration(t) <= 30 * 86_400), 'must be between 1s and 30 days')
      .optional()
      .meta({ description: 'whole-run limit of one training run (default 2h); the trainer gets SIGTERM, then SIGKILL after a grace period' }),
    schedule: JobScheduleSchema.extend({ timezone: TimeZoneSchema })
      .optional()
      .meta({ description: 'windows in which a run may start, in the spoke\'s wall-clock time; evaluated on the spoke, also offline; a run under way at a window\'s end is let finish' }),
  })
  .strict();

/* ---------------------------------------------------------------- objects */

const objectSchema = <K extends PolicyKind, S extends z.ZodType>(kind: K, spec: S) =>
  z
    .object({
      apiVersion: z.literal(API_VERSION),
      kind: z.literal(kind),
      metadata: MetadataSchema,
      spec,
    })
    .strict();

export const ModelSchema = objectSchema('Model', ModelSpecSchema);
export const PlacementSchema = objectSchema('Placement', PlacementSpecSchema);
export const ModelDeploymentSchema = objectSchema('ModelDeployment', ModelDeploymentSpecSchema);
export const FineTuneJobSchema = objectSchema('FineTuneJob', FineTuneJobSpecSchema);

export type Model = z.output<typeof ModelSchema>;
export type Placement = z.output<typeof PlacementSchema>;
export type ModelDeployment = z.output<typeof ModelDeploymentSchema>;
export type FineTuneJob = z.output<typeof FineTuneJobSchema>;
export type PolicyObject = Model | Placement | ModelDeployment | FineTuneJob;

export const KIND_SCHEMAS = {
  Model: ModelSchema,
  Placement: PlacementSchema,
  ModelDeployment: ModelDeploymentSchema,
  FineTuneJob: FineTuneJobSchema,
} as const;

export const PolicyObjectSchema = z.discriminatedUnion('kind', [ModelSchema, PlacementSchema, ModelDeploymentSchema, FineTuneJobSchema]);

/** What `flotilla validate` checks beyond this schema, for the JSON Schema's description. */
export const RULES_BEYOND_JSON_SCHEMA: readonly string[] = BEYOND_JSON_SCHEMA;
