import { z } from 'zod';
import {
  CapacitySchema,
  DigestSchema,
  JOB_RUN_STAGES,
  ReportedConditionSchema,
  ReportedDeploymentStatusSchema,
  ReportedJobRunStatusSchema,
  TelemetrySchema,
  WorkloadPhaseSchema,
} from './messages.js';
import { LocationSchema } from './routing.js';

/**
 * What the admin API answers (DESIGN.md section 4). The hub documents its
 * OpenAPI responses with these schemas and types its DTO mappers with them;
 * the CLI takes its client types from them, so the three cannot drift apart.
 * Plain zod, no framework: the agent and the CLI import this file too.
 */

const isoTime = z.string().datetime({ offset: true });
const nullableTime = isoTime.nullable();
const StringMap = z.record(z.string(), z.string());

/* ------------------------------------------------------------------ errors */

/** Every failure: `{error: {code, message, details}}`; `details.problems` lists field problems on 400. */
export const ErrorResponseSchema = z
  .object({
    error: z
      .object({
        code: z.string().describe('stable, machine-readable: validation_failed, not_found, unauthenticated, forbidden, rate_limited, ...'),
        message: z.string().describe('for people: what is wrong and where'),
        details: z
          .record(z.string(), z.unknown())
          .describe('structured context; on validation_failed `problems: [{field, message}]` (and file, line, column for policy documents)'),
      })
      .strict(),
  })
  .strict();
export type ErrorResponse = z.output<typeof ErrorResponseSchema>;

/** A page of a list: `nextCursor` is null on the last page. */
export const pageOf = <T extends z.ZodType>(item: T) =>
  z
    .object({
      items: z.array(item),
      nextCursor: z.string().nullable().describe('pass as ?cursor= for the next page; null on the last one'),
    })
    .strict();

/* ------------------------------------------------------------------ health */

export const HealthSchema = z.object({ status: z.literal('ok') }).strict();

export const ReadinessSchema = z
  .object({
    status: z.enum(['ready', 'not ready']),
    checks: z.record(z.string(), z.boolean()).describe('each dependency (database, broker) and whether it answered'),
    down: z.array(z.string()).optional().describe('the checks that failed'),
    leader: z
      .object({
        hubId: z.string().describe('the hub answering'),
        leaderHubId: z.string().nullable().describe('the hub that leads (runs the controllers), as Postgres says; null before any has'),
        self: z.boolean().describe('whether the hub answering leads'),
        epoch: z.number().int().nullable().describe('the leadership epoch (bumped at every takeover)'),
      })
      .strict()
      .optional()
      .describe('hub high availability: which replica leads'),
  })
  .strict();

/* ------------------------------------------------------------------ tokens */

export const RoleSchema = z.enum(['viewer', 'operator', 'admin']);

export const ApiTokenSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    role: RoleSchema,
    tokenPrefix: z.string().describe('first characters of the secret, to recognise it'),
    createdBy: z.string(),
    createdAt: isoTime,
    lastUsedAt: nullableTime,
    expiresAt: nullableTime,
  })
  .strict();
export type ApiToken = z.output<typeof ApiTokenSchema>;

export const CreatedApiTokenSchema = ApiTokenSchema.extend({ token: z.string().describe('the secret; shown in this response only') }).strict();

export const EnrollmentTokenSchema = z
  .object({
    id: z.string(),
    tokenPrefix: z.string(),
    labels: StringMap.describe('stamped on every spoke enrolled with this token'),
    allowedLabelKeys: z.array(z.string()).describe('label keys an enrolling agent may ask for beyond the token\'s own ("*": any outside flotilla.dev/)'),
    location: LocationSchema.nullable().describe('stamped on every spoke enrolled with this token'),
    usesTotal: z.number().int(),
    usesLeft: z.number().int(),
    expiresAt: isoTime,
    createdBy: z.string(),
    createdAt: isoTime,
  })
  .strict();
export type EnrollmentToken = z.output<typeof EnrollmentTokenSchema>;

export const CreatedEnrollmentTokenSchema = EnrollmentTokenSchema.extend({
  token: z.string().describe('the secret; shown in this response only'),
}).strict();

/* ------------------------------------------------------------------ spokes */

export const ConnectionSchema = z.enum(['online', 'offline', 'stale']);
export type Connection = z.output<typeof ConnectionSchema>;

export const SpokeSchema = z
  .object({
    name: z.string(),
    labels: StringMap,
    location: LocationSchema.nullable().describe('where the spoke is, for routing; null when nobody said'),
    connection: ConnectionSchema.describe('stale: online but silent for three telemetry intervals'),
    lastSeenAt: nullableTime,
    desiredGeneration: z.number().int().describe('the generation the hub last rendered for this spoke'),
    acceptedGeneration: z.number().int().describe('the last envelope the agent verified and stored'),
    observedGeneration: z.number().int().describe('the last generation whose reconcile finished on the spoke'),
    inSync: z.boolean(),
    conditions: z.array(ReportedConditionSchema),
    capacity: CapacitySchema.nullable(),
    workloads: z.object({ deployments: z.array(ReportedDeploymentStatusSchema), jobs: z.array(ReportedJobRunStatusSchema) }).strict(),
    createdAt: isoTime,
  })
  .strict();
export type Spoke = z.output<typeof SpokeSchema>;

export const SpokeDetailSchema = SpokeSchema.extend({
  facts: z.record(z.string(), z.unknown()).describe('what the agent found on the host at enrolment'),
  telemetry: TelemetrySchema.nullable().describe('latest health snapshot'),
  telemetryAt: nullableTime,
}).strict();
export type SpokeDetail = z.output<typeof SpokeDetailSchema>;

/* ------------------------------------------------------------ model registry */

export const LineageSchema = z
  .object({
    baseVersion: z.string().max(128).optional(),
    job: z.string().max(128).optional(),
    spoke: z.string().max(128).optional(),
    datasetFingerprint: DigestSchema.optional(),
    metrics: z.record(z.string(), z.number()).optional(),
  })
  .strict();

export const RegisteredModelVersionSchema = z
  .object({
    model: z.string(),
    version: z.string(),
    digest: z.string(),
    uri: z.string(),
    format: z.string(),
    sizeBytes: z.number().int().nullable(),
    lineage: LineageSchema.nullable(),
    source: z.string().describe('api:<token name> or the job that produced it'),
    createdAt: isoTime,
  })
  .strict();
export type RegisteredModelVersion = z.output<typeof RegisteredModelVersionSchema>;

export const RegisteredModelSchema = z
  .object({
    name: z.string(),
    task: z.string().nullable(),
    description: z.string(),
    labels: StringMap,
    source: z.string(),
    createdAt: isoTime,
    updatedAt: isoTime,
  })
  .strict();
export type RegisteredModel = z.output<typeof RegisteredModelSchema>;

export const RegisteredModelWithVersionsSchema = RegisteredModelSchema.extend({
  versions: z.array(RegisteredModelVersionSchema).describe('newest first, up to 100'),
}).strict();

/* ------------------------------------------------------------------ policy */

const ObjectActionSchema = z.enum(['created', 'updated', 'unchanged', 'deleted']);

export const SpokeDiffSchema = z
  .object({
    spoke: z.string(),
    added: z.array(z.string()).describe('workloads the spoke gains, as deployment/NAME or job/NAME'),
    removed: z.array(z.string()),
    changed: z.array(z.string()),
  })
  .strict();

/** Counts over every affected spoke, however many the answer lists. */
export const SpokeDiffSummarySchema = z
  .object({
    spokes: z.number().int().describe('spokes that gain, lose or see a workload change'),
    added: z.number().int().describe('workloads gained, summed over those spokes'),
    removed: z.number().int(),
    changed: z.number().int(),
  })
  .strict();

/**
 * Fields every apply or delete answer carries beside `spokes`: when more
 * spokes are affected than one page holds, `spokes` is the first page (by
 * name) and the rest is read with `GET /api/v1/apply-reports/{reportId}`.
 */
const boundedSpokes = {
  spokeSummary: SpokeDiffSummarySchema,
  reportId: z.string().nullable().describe('set when `spokes` is not the whole list: the report holding every spoke\'s diff for a day'),
  spokesNextCursor: z.string().nullable().describe('pass as ?cursor= to GET /api/v1/apply-reports/{reportId} for the next page; null when `spokes` is complete'),
};

export const ApplyResultSchema = z
  .object({
    dryRun: z.boolean(),
    objects: z.array(z.object({ kind: z.string(), name: z.string(), action: ObjectActionSchema }).strict()),
    spokes: z.array(SpokeDiffSchema).describe('what each affected spoke gains, loses or sees change (the first page when there are more)'),
    ...boundedSpokes,
  })
  .strict();
export type ApplyResult = z.output<typeof ApplyResultSchema>;

/** What `DELETE /api/v1/policy-objects/{kind}/{name}` and `POST /api/v1/delete` answer. */
export const DeleteResultSchema = z
  .object({
    dryRun: z.boolean(),
    objects: z.array(z.object({ kind: z.string(), name: z.string(), action: z.literal('deleted'), source: z.string() }).strict()),
    notFound: z.array(z.object({ kind: z.string(), name: z.string() }).strict()).describe('named objects that do not exist (with ignoreNotFound=true)'),
    spokes: z.array(SpokeDiffSchema).describe('what each affected spoke loses (the first page when there are more)'),
    ...boundedSpokes,
  })
  .strict();
export type DeleteResult = z.output<typeof DeleteResultSchema>;

/** `GET /api/v1/apply-reports/{id}`: a page of a large apply's or delete's per-spoke diff. */
export const ApplyReportPageSchema = z
  .object({
    id: z.string(),
    createdAt: z.string(),
    dryRun: z.boolean(),
    summary: SpokeDiffSummarySchema,
    items: z.array(SpokeDiffSchema),
    nextCursor: z.string().nullable().describe('pass as ?cursor= for the next page; null on the last one'),
  })
  .strict();
export type ApplyReportPage = z.output<typeof ApplyReportPageSchema>;

/** `GET /api/v1/version`. */
export const VersionSchema = z
  .object({ version: z.string(), api: z.literal('v1'), protocol: z.number().int() })
  .strict();

export const PolicyObjectViewSchema = z
  .object({
    kind: z.enum(['Model', 'Placement', 'ModelDeployment', 'FineTuneJob']),
    name: z.string(),
    labels: StringMap,
    spec: z.record(z.string(), z.unknown()).describe('the spec as applied, defaults filled in (see `flotilla schema`)'),
    source: z.string().describe('api:<token name> or git:<source>'),
    commit: z.string().nullable(),
    generation: z.number().int(),
    conditions: z
      .array(
        z
          .object({
            type: z.enum(['Stalled', 'Ready']),
            status: z.enum(['True', 'False']),
            reason: z.string(),
            message: z.string(),
            lastTransitionTime: isoTime,
            observedGeneration: z.number().int(),
          })
          .strict(),
      )
      .describe('Stalled=True, with the missing placement or model version, when the last render could not render the object'),
    createdAt: isoTime,
    updatedAt: isoTime,
  })
  .strict();
export type PolicyObjectView = z.output<typeof PolicyObjectViewSchema>;

const detailOnly = 'only when one object is asked for by name';

export const PlacementViewSchema = PolicyObjectViewSchema.extend({
  decision: z
    .object({
      evaluatedAt: isoTime,
      spokeCount: z.number().int(),
      selectedCount: z.number().int(),
      excludedCount: z.number().int(),
      selected: z.array(z.string()).optional().describe(detailOnly),
      excluded: z
        .array(z.object({ spoke: z.string(), reasons: z.array(z.string()) }).strict())
        .optional()
        .describe(`${detailOnly}: each spoke left out and why`),
    })
    .strict(),
  usedBy: z
    .object({ deployments: z.array(z.string()), fineTuneJobs: z.array(z.string()) })
    .strict()
    .optional()
    .describe(detailOnly),
}).strict();
export type PlacementView = z.output<typeof PlacementViewSchema>;

const WorkloadPlacementSchema = z
  .object({
    name: z.string(),
    found: z.boolean().describe('false when no Placement of that name exists'),
    selectedCount: z.number().int(),
    selected: z.array(z.string()).optional().describe(detailOnly),
  })
  .strict();

const COMPLIANCE_STATES = ['Compliant', 'NonCompliant', 'Pending', 'Unknown'] as const;
const JOB_STATES = ['Succeeded', 'Running', 'Pending', 'Failed', 'Rejected', 'Unknown'] as const;
const countsOf = <S extends string>(states: readonly [S, ...S[]]) =>
  z.object(Object.fromEntries(states.map((s) => [s, z.number().int()])) as Record<S, z.ZodNumber>).strict();

export const SpokeComplianceSchema = z
  .object({
    spoke: z.string(),
    state: z.enum(COMPLIANCE_STATES),
    reason: z.string().describe('CamelCase cause, stable for scripts: SpokeOffline, GenerationBehind, Reported, ...'),
    message: z.string(),
    connection: ConnectionSchema,
    desiredGeneration: z.number().int(),
    observedGeneration: z.number().int(),
    phase: WorkloadPhaseSchema.nullable(),
    readyReplicas: z.number().int().nullable(),
    desiredReplicas: z.number().int().nullable(),
    servingVersion: z.string().nullable(),
    endpoint: z.string().nullable(),
    promotedVersion: z
      .string()
      .nullable()
      .optional()
      .describe('the fine-tuned version promoted on this spoke, which it is judged against (null when it serves the policy’s rendering)'),
  })
  .strict();
export type SpokeCompliance = z.output<typeof SpokeComplianceSchema>;

/* ------------------------------------------------------------- rollouts */

export const RolloutGateSchema = z
  .object({
    name: z.enum(['errorRatio', 'latencyP99Ratio', 'restarts']),
    value: z.number().nullable().describe('worst value measured in the window; null when not measured (no requests, or no latency before the change)'),
    threshold: z.number(),
    ok: z.boolean(),
  })
  .strict();

export const RolloutSpokeSchema = z
  .object({
    spoke: z.string(),
    wave: z.number().int().describe('1-based'),
    state: z.enum(['Pending', 'Progressing', 'Verifying', 'Succeeded', 'RollingBack', 'RolledBack', 'Failed']),
    failed: z.boolean().describe('the spoke failed on the way forward (it counts against maxFailures)'),
    reason: z.string(),
    message: z.string(),
    gates: z.array(RolloutGateSchema),
    targetGeneration: z.number().int().nullable().describe('the desired generation that carries its current revision'),
  })
  .strict();

export const RolloutViewSchema = z
  .object({
    deployment: z.string(),
    id: z.string(),
    phase: z.enum(['Progressing', 'Paused', 'Succeeded', 'Failed', 'RolledBack', 'Aborted']),
    rollingBack: z.boolean(),
    fromVersion: z.string().nullable(),
    toVersion: z.string(),
    wave: z.number().int().describe('1-based; the wave in progress, or the last one'),
    waves: z.number().int(),
    waveStartedAt: isoTime,
    waveDeadline: isoTime,
    startedAt: isoTime,
    finishedAt: nullableTime,
    message: z.string(),
    settings: z
      .object({
        strategy: z.enum(['Progressive', 'AllAtOnce']),
        maxConcurrency: z.union([z.number(), z.string()]),
        minSuccessSeconds: z.number(),
        progressDeadlineSeconds: z.number(),
        maxFailures: z.number().int(),
        gates: z.object({ maxErrorRatio: z.number(), maxLatencyP99Ratio: z.number(), noRestarts: z.boolean() }).strict(),
      })
      .strict()
      .nullable(),
    counts: z.record(z.string(), z.number().int()),
    spokes: z.array(RolloutSpokeSchema),
  })
  .strict();
export type RolloutView = z.output<typeof RolloutViewSchema>;

/** A fine-tuned version promoted on one spoke for one deployment (issue 13, deliverable 7). */
export const SpokePromotionSchema = z
  .object({
    deployment: z.string(),
    spoke: z.string(),
    model: z.string(),
    version: z.string().describe('the produced version the spoke serves instead of the policy’s while the promotion is active'),
    previousVersion: z.string().nullable().describe('what the spoke served before, and serves again after a rollback or withdrawal'),
    job: z.string(),
    jobGeneration: z.number().int().describe('the FineTuneJob’s policy generation when it was promoted'),
    state: z.enum(['Progressing', 'Verifying', 'Promoted', 'RolledBack', 'Withdrawn']),
    active: z.boolean().describe('the spoke is sent the produced version (Progressing, Verifying, Promoted)'),
    reason: z.string().describe('AutoPromoted, ManuallyPromoted, Ready, Passed, GateFailed, ProgressDeadlineExceeded, JobDeleted, BaseVersionChanged, DeploymentModelChanged, NotPlaced, VersionMissing'),
    message: z.string().describe('why, with the measured value and the threshold when a gate failed'),
    actor: z.string(),
    gates: z.array(RolloutGateSchema),
    targetGeneration: z.number().int().nullable().describe('the desired generation that carries the produced version'),
    since: isoTime,
    updatedAt: isoTime,
  })
  .strict();
export type SpokePromotion = z.output<typeof SpokePromotionSchema>;

export const PromoteResultSchema = z
  .object({
    job: z.string(),
    spoke: z.string(),
    model: z.string(),
    version: z.string(),
    started: z.array(z.string()).describe('deployments whose promotion started now (empty when each was already promoted to this version)'),
    promotions: z.array(SpokePromotionSchema),
  })
  .strict();
export type PromoteResult = z.output<typeof PromoteResultSchema>;

export const DeploymentViewSchema = PolicyObjectViewSchema.extend({
  placement: WorkloadPlacementSchema,
  compliance: z
    .object({
      evaluatedAt: isoTime,
      counts: countsOf(COMPLIANCE_STATES),
      spokes: z.array(SpokeComplianceSchema).optional().describe(detailOnly),
    })
    .strict(),
  rollout: RolloutViewSchema.nullable().optional().describe(`the current rollout (null when none); ${detailOnly}`),
  promotions: z.array(SpokePromotionSchema).optional().describe(`per-spoke overrides by promoted fine-tuned versions, active or not; ${detailOnly}`),
}).strict();
export type DeploymentView = z.output<typeof DeploymentViewSchema>;

export const SpokeJobRunSchema = z
  .object({
    spoke: z.string(),
    state: z.enum(JOB_STATES),
    phase: z.enum(JOB_RUN_STAGES).nullable().describe('the stage the spoke last reported (Pending, Preparing, Training, Evaluating, Registering, Succeeded, Failed, Rejected); null before any report'),
    reason: z.string(),
    message: z.string(),
    connection: ConnectionSchema,
    progress: z.number().nullable(),
    datasetFingerprint: z.string().nullable().describe('sha256 of the sorted relative paths and sizes of the dataset on that spoke (never its contents); null until read'),
    metrics: z.record(z.string(), z.number()),
    producedVersion: z.string().nullable(),
    promoted: z.boolean().optional().describe('the produced version is promoted (served) on this spoke'),
    promotions: z.array(SpokePromotionSchema).optional().describe(`this job’s promotions on this spoke; ${detailOnly}`),
  })
  .strict();
export type SpokeJobRun = z.output<typeof SpokeJobRunSchema>;

export const FineTuneJobViewSchema = PolicyObjectViewSchema.extend({
  placement: WorkloadPlacementSchema,
  runs: z
    .object({
      evaluatedAt: isoTime,
      counts: countsOf(JOB_STATES),
      spokes: z.array(SpokeJobRunSchema).optional().describe(detailOnly),
      producedVersions: z
        .array(z.object({ spoke: z.string(), version: z.string() }).strict())
        .optional()
        .describe(detailOnly),
    })
    .strict(),
}).strict();
export type FineTuneJobView = z.output<typeof FineTuneJobViewSchema>;

/* ------------------------------------------------------------- git sources */

export const SyncProblemSchema = z
  .object({ file: z.string(), line: z.number().int(), column: z.number().int(), field: z.string(), message: z.string() })
  .strict();

export const SyncErrorSchema = z
  .object({
    commit: z.string().nullable().describe('the commit that failed; null when it could not be fetched'),
    message: z.string(),
    problems: z.array(SyncProblemSchema),
    at: isoTime,
  })
  .strict();
export type SyncError = z.output<typeof SyncErrorSchema>;

export const GitSourceSchema = z
  .object({
    name: z.string(),
    url: z.string().describe('credentials in the URL are never shown'),
    branch: z.string(),
    path: z.string(),
    intervalSeconds: z.number().int(),
    lastCommit: z.string().nullable().describe('last commit applied successfully'),
    lastSyncedAt: nullableTime.describe('when the hub last confirmed the source is applied'),
    lastError: SyncErrorSchema.nullable().describe('why the latest sync failed; null once a sync succeeds'),
    objectCount: z.number().int().describe('policy objects this source wrote (source git:<name>)'),
    createdAt: isoTime,
    updatedAt: isoTime,
  })
  .strict();
export type GitSource = z.output<typeof GitSourceSchema>;

export const GitSyncResultSchema = z
  .object({
    source: z.string(),
    outcome: z.enum(['applied', 'unchanged', 'failed']),
    commit: z.string().nullable(),
    objects: ApplyResultSchema.shape.objects.optional(),
    spokes: ApplyResultSchema.shape.spokes.optional(),
    error: SyncErrorSchema.optional(),
    gitSource: GitSourceSchema,
  })
  .strict();

export const GitSourceDeletedSchema = z
  .object({
    deleted: z.string(),
    objects: ApplyResultSchema.shape.objects.describe('the policy objects deleted with the source'),
    spokes: ApplyResultSchema.shape.spokes,
  })
  .strict();

/* ------------------------------------------------------------------- audit */

export const AuditEventSchema = z
  .object({
    id: z.number().int(),
    at: isoTime,
    actor: z.string().describe('token:<name>, enrollment-token:<prefix>, git:<source>, system'),
    action: z.string(),
    target: z.string(),
    beforeDigest: z.string().nullable(),
    afterDigest: z.string().nullable(),
    details: z.record(z.string(), z.unknown()),
    requestId: z.string().nullable(),
  })
  .strict();
export type AuditEvent = z.output<typeof AuditEventSchema>;

/* ------------------------------------------------------------ signing key */

export const SigningKeySchema = z
  .object({
    publicKey: z.string().describe('the hub signing key in use (Ed25519, SPKI PEM)'),
    fingerprint: z.string().describe('sha256: of the public key (DER), to compare with an agent\'s credentials.json'),
    rotations: z.number().int().describe('how many times the key was rotated'),
    lastRotatedAt: nullableTime,
  })
  .strict();
export type SigningKey = z.output<typeof SigningKeySchema>;

/* -------------------------------------------------------- spoke commands */

export const SpokeCommandAcceptedSchema = z.object({ id: z.string() }).strict();

export const SpokeCommandSchema = z
  .object({
    id: z.string(),
    spoke: z.string(),
    type: z.enum(['resync', 'diagnostics', 'restart']),
    target: z.string().nullable(),
    state: z.enum(['Queued', 'Sent', 'Succeeded', 'Failed']),
    actor: z.string(),
    createdAt: isoTime,
    sentAt: nullableTime,
    finishedAt: nullableTime,
    message: z.string(),
    result: z.record(z.string(), z.unknown()).nullable().describe('what the agent answered (diagnostics: state and recent workload log lines)'),
  })
  .strict();
export type SpokeCommand = z.output<typeof SpokeCommandSchema>;

/** `PUT /api/v1/finetune-jobs/{name}/artifacts/{version}`: what the hub stored. */
export const UploadedArtifactSchema = z
  .object({
    job: z.string(),
    spoke: z.string(),
    version: z.string(),
    digest: z.string(),
    sizeBytes: z.number().int(),
    /** What the registry records: `flotilla:artifacts/sha256/<hex>`. */
    uri: z.string(),
    /** False when the store held these bytes already (a repeated upload). */
    created: z.boolean(),
  })
  .strict();
export type UploadedArtifact = z.output<typeof UploadedArtifactSchema>;
