import { CreateSpokeCommand } from '../commands/spoke-commands.controller.js';
import { PromoteJobBody } from '../finetune/finetune-promotions.controller.js';
import {
  ApplyReportPageSchema,
  ApplyResultSchema,
  DeleteResultSchema,
  VersionSchema,
  CreatedApiTokenSchema,
  CreatedEnrollmentTokenSchema,
  EnrollRequestSchema,
  EnrollResponseSchema,
  DeploymentViewSchema,
  FineTuneJobViewSchema,
  GitSourceDeletedSchema,
  GitSourceSchema,
  GitSyncResultSchema,
  HealthSchema,
  PlacementViewSchema,
  ReadinessSchema,
  RegisteredModelSchema,
  RegisteredModelVersionSchema,
  RegisteredModelWithVersionsSchema,
  SpokeDetailSchema,
  SigningKeySchema,
  RouteResponseSchema,
  RolloutViewSchema,
  SpokeCommandAcceptedSchema,
  SpokeCommandSchema,
  PromoteResultSchema,
  UploadedArtifactSchema,
} from '@flotilla/contracts';
import type { z } from 'zod';
import { AuditQuery } from '../audit/audit-events.controller.js';
import { PageQuerySchema } from '../common/pagination.js';
import type { Role } from '../database/entities/api-token.entity.js';
import { CreateEnrollmentToken } from '../enrollment/enrollment-tokens.controller.js';
import { DeleteQuery } from '../git/git-sources.controller.js';
import { CreateGitSourceSchema } from '../git/git-source.dto.js';
import { CreateModel, CreateVersion } from '../models/models.controller.js';
import { ApplyQuery } from '../policy/apply.controller.js';
import { DeleteQuery as DeletePolicyQuery } from '../policy/delete-policy.controller.js';
import { ListQuery, ObjectsQuery } from '../policy/policy-views.controller.js';
import { ListSpokesQuery, PatchSpoke } from '../spokes/spokes.controller.js';
import { RouteQuerySchema } from '../routing/route.controller.js';
import { CreateApiToken } from '../tokens/api-tokens.controller.js';
import { Pages } from './components.js';

/**
 * What each route of the admin API takes and answers, keyed by the route
 * itself (method and path, the contract of DESIGN.md section 4). Summaries and
 * tags stay on the controllers (`@ApiOperation`, `@ApiTags`); the document
 * builder joins the two and reports any route missing here.
 *
 * Error responses follow from the route: 401 and 429 unless public, 403 when
 * the route needs more than `viewer`, 400 with a body or query string (and
 * 413 with a body), 404 with a path parameter; `errors` adds the rest.
 */

export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 416 | 422 | 429 | 502 | 503;

export interface ResponseDoc {
  status: number;
  description: string;
  /** JSON body; absent for 204. */
  schema?: z.ZodType;
  /** A non-JSON body (the Prometheus exposition). */
  text?: { contentType: string };
}

export interface OperationDoc {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  /** OpenAPI path template, e.g. `/api/v1/spokes/{name}`. */
  path: string;
  operationId: string;
  /**
   * `public` routes need no token; `spoke` routes take only a spoke's own
   * credentials (HTTP Basic); otherwise the least role that may call it.
   */
  access: 'public' | 'spoke' | Role;
  /** Spokes may also call it with their own credentials (besides tokens with the role). */
  spokesToo?: boolean;
  pathParams?: Record<string, string>;
  query?: z.ZodObject;
  /** A JSON body validated by this schema (a named component), or content given in full (apply). */
  body?: z.ZodType | { content: Record<string, unknown>; description: string };
  response: ResponseDoc;
  /** Other success or non-error answers (readiness 503). */
  alsoResponds?: ResponseDoc[];
  /** Error statuses beyond those that follow from the route, with why. */
  errors?: Partial<Record<ErrorStatus, string>>;
}

const NAME = 'object name (DNS label)';

/** The body apply and delete take: YAML text, a JSON list of objects, one object, or named files. */
function policyDocuments(description: string): OperationDoc['body'] {
  return {
    description,
    content: {
      ...Object.fromEntries(
        ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/plain'].map((type) => [type, { schema: { type: 'string', description: 'YAML documents separated by ---' } }]),
      ),
      'application/json': {
        schema: {
          oneOf: [
            { type: 'array', items: { type: 'object' }, description: 'policy objects' },
            { $ref: '#/components/schemas/ApplyFilesRequest' },
            {
              type: 'object',
              required: ['apiVersion', 'kind'],
              properties: { apiVersion: { const: 'flotilla.dev/v1' }, kind: { type: 'string' } },
              description: 'one policy object',
            },
          ],
        },
      },
    },
  };
}

export const OPERATIONS: OperationDoc[] = [
  /* ------------------------------------------------------------- health */
  {
    method: 'get',
    path: '/healthz',
    operationId: 'getHealth',
    access: 'public',
    response: { status: 200, description: 'the hub process is alive', schema: HealthSchema },
  },
  {
    method: 'get',
    path: '/readyz',
    operationId: 'getReadiness',
    access: 'public',
    response: { status: 200, description: 'database and broker reachable', schema: ReadinessSchema },
    alsoResponds: [{ status: 503, description: 'a dependency does not answer; `checks` says which', schema: ReadinessSchema }],
  },
  {
    method: 'get',
    path: '/metrics',
    operationId: 'getMetrics',
    access: 'public',
    response: {
      status: 200,
      description: 'Prometheus text exposition of the hub and fleet metrics',
      text: { contentType: 'text/plain; version=0.0.4; charset=utf-8' },
    },
  },

  {
    method: 'get',
    path: '/api/v1/version',
    operationId: 'getVersion',
    access: 'public',
    response: { status: 200, description: 'hub version, API version and MQTT protocol version', schema: VersionSchema },
  },

  /* ------------------------------------------------------------- tokens */
  {
    method: 'post',
    path: '/api/v1/api-tokens',
    operationId: 'createApiToken',
    access: 'admin',
    body: CreateApiToken,
    response: { status: 201, description: 'the token, with its secret (shown once)', schema: CreatedApiTokenSchema },
    errors: { 409: 'an API token of that name exists (api_token_exists)' },
  },
  {
    method: 'get',
    path: '/api/v1/api-tokens',
    operationId: 'listApiTokens',
    access: 'admin',
    query: PageQuerySchema,
    response: { status: 200, description: 'API tokens by name', schema: Pages.ApiToken },
  },
  {
    method: 'delete',
    path: '/api/v1/api-tokens/{name}',
    operationId: 'deleteApiToken',
    access: 'admin',
    pathParams: { name: 'token name' },
    response: { status: 204, description: 'revoked' },
  },
  {
    method: 'post',
    path: '/api/v1/enrollment-tokens',
    operationId: 'createEnrollmentToken',
    access: 'admin',
    body: CreateEnrollmentToken,
    response: { status: 201, description: 'the enrolment token, with its secret (shown once)', schema: CreatedEnrollmentTokenSchema },
  },
  {
    method: 'get',
    path: '/api/v1/enrollment-tokens',
    operationId: 'listEnrollmentTokens',
    access: 'admin',
    query: PageQuerySchema,
    response: { status: 200, description: 'enrolment tokens, newest first', schema: Pages.EnrollmentToken },
  },
  {
    method: 'delete',
    path: '/api/v1/enrollment-tokens/{id}',
    operationId: 'deleteEnrollmentToken',
    access: 'admin',
    pathParams: { id: 'enrolment token id (a UUID)' },
    response: { status: 204, description: 'revoked' },
  },
  {
    method: 'post',
    path: '/api/v1/enroll',
    operationId: 'enroll',
    access: 'public',
    body: EnrollRequestSchema,
    response: { status: 201, description: 'the spoke is enrolled: its MQTT credentials (shown once) and the hub signing key', schema: EnrollResponseSchema },
    errors: {
      401: 'the enrolment token is unknown, revoked, expired or used up',
      409: 'a spoke of that name is enrolled (spoke_exists)',
      429: 'too many failed attempts from this address; see Retry-After',
    },
  },

  /* ------------------------------------------------------------- spokes */
  {
    method: 'get',
    path: '/api/v1/spokes',
    operationId: 'listSpokes',
    access: 'viewer',
    query: ListSpokesQuery,
    response: { status: 200, description: 'spokes by name', schema: Pages.Spoke },
  },
  {
    method: 'get',
    path: '/api/v1/spokes/{name}',
    operationId: 'getSpoke',
    access: 'viewer',
    pathParams: { name: 'spoke name' },
    response: { status: 200, description: 'the spoke', schema: SpokeDetailSchema },
  },
  {
    method: 'patch',
    path: '/api/v1/spokes/{name}',
    operationId: 'patchSpoke',
    access: 'operator',
    pathParams: { name: 'spoke name' },
    body: PatchSpoke,
    response: { status: 200, description: 'the spoke with its new labels', schema: SpokeDetailSchema },
  },
  {
    method: 'delete',
    path: '/api/v1/spokes/{name}',
    operationId: 'deleteSpoke',
    access: 'admin',
    pathParams: { name: 'spoke name' },
    response: { status: 204, description: 'revoked: its credentials no longer work and its session is closed' },
    errors: { 502: 'revoked in the database, but the external broker did not confirm (revocation_incomplete); retry' },
  },

  /* ------------------------------------------------------------- models */
  {
    method: 'post',
    path: '/api/v1/models',
    operationId: 'createModel',
    access: 'operator',
    body: CreateModel,
    response: { status: 201, description: 'the registered model', schema: RegisteredModelSchema },
    errors: { 409: 'a model of that name exists (model_exists)' },
  },
  {
    method: 'get',
    path: '/api/v1/models',
    operationId: 'listModels',
    access: 'viewer',
    query: PageQuerySchema,
    response: { status: 200, description: 'registered models by name', schema: Pages.RegisteredModel },
  },
  {
    method: 'get',
    path: '/api/v1/models/{name}',
    operationId: 'getModel',
    access: 'viewer',
    pathParams: { name: 'model name' },
    response: { status: 200, description: 'the model with its versions', schema: RegisteredModelWithVersionsSchema },
  },
  {
    method: 'get',
    path: '/api/v1/models/{name}/versions',
    operationId: 'listModelVersions',
    access: 'viewer',
    pathParams: { name: 'model name' },
    query: PageQuerySchema,
    response: { status: 200, description: 'versions by version string', schema: Pages.ModelVersion },
  },
  {
    method: 'get',
    path: '/api/v1/models/{name}/versions/{version}',
    operationId: 'getModelVersion',
    access: 'viewer',
    pathParams: { name: 'model name', version: 'version string' },
    response: { status: 200, description: 'the version with its lineage (base model, job and generation, spoke, dataset fingerprint, metrics)', schema: RegisteredModelVersionSchema },
  },
  {
    method: 'post',
    path: '/api/v1/models/{name}/versions',
    operationId: 'createModelVersion',
    access: 'operator',
    pathParams: { name: 'model name' },
    body: CreateVersion,
    response: { status: 201, description: 'the registered version', schema: RegisteredModelVersionSchema },
    errors: { 409: 'the model has that version already; versions are immutable (model_version_exists)' },
  },

  /* ------------------------------------------------------------- policy */
  {
    method: 'post',
    path: '/api/v1/apply',
    operationId: 'applyPolicy',
    access: 'operator',
    query: ApplyQuery,
    body: policyDocuments('policy documents: YAML (one or many), a JSON list of objects, one JSON object, or several files by name'),
    response: { status: 200, description: 'what was (or, on a dry run, would be) created, updated, deleted, and what each spoke gains or loses', schema: ApplyResultSchema },
    errors: {
      400: 'a document is invalid or refers to what does not exist, also after a prune (invalid_policy: details.problems gives file, line, column and field of each), or the request is malformed',
      403: 'force=true without the admin role, or source=git:NAME (the git syncer\'s) without force (forbidden)',
      409: 'a Model document gives a registered version another digest, URI or format; versions are immutable (model_version_exists: details.registeredDigest); or the body changes objects a git source owns (owned_by_git_source: details.objects names each and its owner)',
    },
  },
  {
    method: 'get',
    path: '/api/v1/apply-reports/{id}',
    operationId: 'getApplyReport',
    access: 'viewer',
    pathParams: { id: 'reportId from the apply or delete answer' },
    query: PageQuerySchema,
    response: { status: 200, description: 'a page of the per-spoke diff of an apply or delete whose answer listed only the first spokes', schema: ApplyReportPageSchema },
    errors: { 404: 'no such report, or it expired (reports are kept for 24 hours)' },
  },
  {
    method: 'delete',
    path: '/api/v1/policy-objects/{kind}/{name}',
    operationId: 'deletePolicyObject',
    access: 'admin',
    pathParams: { kind: 'Model, Placement, ModelDeployment or FineTuneJob (any case)', name: NAME },
    query: DeletePolicyQuery,
    response: { status: 200, description: 'what was (or, on a dry run, would be) deleted, and what each spoke loses', schema: DeleteResultSchema },
    errors: { 409: 'another object still refers to it (still_referenced: details.referrers names each), or a git source owns it and force is not set (owned_by_git_source)' },
  },
  {
    method: 'post',
    path: '/api/v1/delete',
    operationId: 'deletePolicyObjects',
    access: 'admin',
    query: DeletePolicyQuery,
    body: policyDocuments('the documents naming the objects to delete (kind and metadata.name; specs are not checked), in the body shapes apply takes'),
    response: { status: 200, description: 'what was (or, on a dry run, would be) deleted, all or nothing, and what each spoke loses', schema: DeleteResultSchema },
    errors: { 404: 'a named object does not exist and ignoreNotFound is not set', 409: 'another object still refers to one of them (still_referenced), or a git source owns one and force is not set (owned_by_git_source)' },
  },
  {
    method: 'get',
    path: '/api/v1/policy-objects',
    operationId: 'listPolicyObjects',
    access: 'viewer',
    query: ObjectsQuery,
    response: { status: 200, description: 'policy objects by kind, then name', schema: Pages.PolicyObject },
  },
  {
    method: 'get',
    path: '/api/v1/placements',
    operationId: 'listPlacements',
    access: 'viewer',
    query: ListQuery,
    response: { status: 200, description: 'placements by name', schema: Pages.Placement },
  },
  {
    method: 'get',
    path: '/api/v1/placements/{name}',
    operationId: 'getPlacement',
    access: 'viewer',
    pathParams: { name: NAME },
    response: { status: 200, description: 'the placement with its decision', schema: PlacementViewSchema },
  },
  {
    method: 'get',
    path: '/api/v1/deployments',
    operationId: 'listDeployments',
    access: 'viewer',
    query: ListQuery,
    response: { status: 200, description: 'model deployments by name', schema: Pages.ModelDeployment },
  },
  {
    method: 'get',
    path: '/api/v1/deployments/{name}',
    operationId: 'getDeployment',
    access: 'viewer',
    pathParams: { name: NAME },
    response: { status: 200, description: 'the deployment with per-spoke compliance', schema: DeploymentViewSchema },
  },
  {
    method: 'get',
    path: '/api/v1/finetune-jobs',
    operationId: 'listFineTuneJobs',
    access: 'viewer',
    query: ListQuery,
    response: { status: 200, description: 'fine-tuning jobs by name', schema: Pages.FineTuneJob },
  },
  {
    method: 'get',
    path: '/api/v1/finetune-jobs/{name}',
    operationId: 'getFineTuneJob',
    access: 'viewer',
    pathParams: { name: NAME },
    response: { status: 200, description: 'the job with its run on each spoke', schema: FineTuneJobViewSchema },
  },
  {
    method: 'post',
    path: '/api/v1/finetune-jobs/{name}/promote',
    operationId: 'promoteFineTuneJob',
    access: 'operator',
    pathParams: { name: NAME },
    body: PromoteJobBody,
    response: { status: 200, description: 'the promotion on that spoke of every deployment serving the job’s output model (rendered and watched by the promotion controller)', schema: PromoteResultSchema },
    errors: {
      404: 'no such fine-tune job, or no such spoke (not_found)',
      409: 'no passing produced version for that spoke: the job has not run there, its run did not succeed, or the version is not registered yet (no_produced_version); no deployment serves the output model on that spoke (no_deployment)',
    },
  },

  /* ---------------------------------------------------------- artifacts */
  {
    method: 'put',
    path: '/api/v1/finetune-jobs/{name}/artifacts/{version}',
    operationId: 'uploadProducedArtifact',
    access: 'spoke',
    pathParams: { name: 'fine-tuning job placed on the calling spoke, with output.artifact: upload', version: "the version the spoke's run produced (the naming rule: <base>-ft.<spoke>.<12 hex of the digest>)" },
    body: {
      description: 'the model bytes (model.onnx), streamed; header X-Flotilla-Digest: sha256:<hex> declares their digest, checked on arrival',
      content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } },
    },
    response: { status: 200, description: "stored in the hub's artifact store under its digest (created: false when it was there already)", schema: UploadedArtifactSchema },
    errors: {
      403: 'the job is not placed on this spoke, or the version is not the one its run produced, or the caller is not a spoke (forbidden)',
      409: 'the job keeps its artifact on the spoke (artifact_keep_local)',
      413: 'the artifact is over FLOTILLA_ARTIFACT_MAX_BYTES (payload_too_large)',
      422: 'the received bytes do not have the declared digest; nothing was kept (digest_mismatch)',
    },
  },
  {
    method: 'get',
    path: '/api/v1/artifacts/sha256/{hex}',
    operationId: 'downloadArtifact',
    access: 'admin',
    spokesToo: true,
    pathParams: { hex: 'the sha256 of the artifact, 64 lower-case hex digits' },
    response: { status: 200, description: 'the bytes (Range: bytes=N- answers 206 from N), with ETag and X-Flotilla-Digest', text: { contentType: 'application/octet-stream' } },
    errors: {
      403: 'a spoke whose desired state uses no model version with this digest (forbidden)',
      416: 'a range starting past the end (range_not_satisfiable)',
    },
  },

  /* -------------------------------------------------------- git sources */
  {
    method: 'post',
    path: '/api/v1/git-sources',
    operationId: 'createGitSource',
    access: 'admin',
    body: CreateGitSourceSchema,
    response: { status: 201, description: 'the git source; the first sync follows shortly', schema: GitSourceSchema },
    errors: { 409: 'a git source of that name exists (git_source_exists)' },
  },
  {
    method: 'get',
    path: '/api/v1/git-sources',
    operationId: 'listGitSources',
    access: 'viewer',
    query: PageQuerySchema,
    response: { status: 200, description: 'git sources by name', schema: Pages.GitSource },
  },
  {
    method: 'get',
    path: '/api/v1/git-sources/{name}',
    operationId: 'getGitSource',
    access: 'viewer',
    pathParams: { name: 'git source name' },
    response: { status: 200, description: 'the git source', schema: GitSourceSchema },
  },
  {
    method: 'post',
    path: '/api/v1/git-sources/{name}/sync',
    operationId: 'syncGitSource',
    access: 'operator',
    pathParams: { name: 'git source name' },
    response: { status: 200, description: 'the outcome (applied, unchanged or failed with the error) and the source after it', schema: GitSyncResultSchema },
    errors: { 503: 'the hub is stopping (hub_stopping)' },
  },
  {
    method: 'delete',
    path: '/api/v1/git-sources/{name}',
    operationId: 'deleteGitSource',
    access: 'admin',
    pathParams: { name: 'git source name' },
    query: DeleteQuery,
    response: { status: 200, description: 'the source is gone; the objects deleted with it', schema: GitSourceDeletedSchema },
    errors: { 409: 'other objects refer to objects the source wrote (git_source_objects_in_use)' },
  },

  /* -------------------------------------------------------------- audit */
  {
    method: 'get',
    path: '/api/v1/audit-events',
    operationId: 'listAuditEvents',
    access: 'viewer',
    query: AuditQuery,
    response: { status: 200, description: 'audit events, newest first', schema: Pages.AuditEvent },
  },

  /* ------------------------------------------------------ key rotation */
  {
    method: 'post',
    path: '/api/v1/api-tokens/{name}/rotate',
    operationId: 'rotateApiToken',
    access: 'admin',
    pathParams: { name: 'token name (bootstrap-admin for the first admin token)' },
    response: { status: 200, description: 'the token with its new secret (shown once); the old secret no longer works', schema: CreatedApiTokenSchema },
    errors: { 409: 'the bootstrap token is set by FLOTILLA_ADMIN_TOKEN (bootstrap_token_from_env)' },
  },
  {
    method: 'get',
    path: '/api/v1/signing-key',
    operationId: 'getSigningKey',
    access: 'viewer',
    response: { status: 200, description: 'the hub signing key in use and its rotations', schema: SigningKeySchema },
  },
  {
    method: 'post',
    path: '/api/v1/signing-key/rotate',
    operationId: 'rotateSigningKey',
    access: 'admin',
    response: { status: 200, description: 'the new key; every spoke gets its desired state again, signed by it and announced under the old key', schema: SigningKeySchema },
  },
  /* ------------------------------------------------------------ routing */
  {
    method: 'get',
    path: '/api/v1/route',
    operationId: 'route',
    access: 'viewer',
    query: RouteQuerySchema,
    response: {
      status: 200,
      description: 'healthy spokes serving the model, best first (nearest, then load, then p99), with endpoints and figures; and the spokes left out with why',
      schema: RouteResponseSchema,
    },
  },
  /* ----------------------------------------------------------- rollouts */
  {
    method: 'get',
    path: '/api/v1/rollouts/{deployment}',
    operationId: 'getRollout',
    access: 'viewer',
    pathParams: { deployment: 'the ModelDeployment’s name' },
    response: { status: 200, description: 'the current rollout with waves, per-spoke states and gate readings', schema: RolloutViewSchema },
  },
  {
    method: 'post',
    path: '/api/v1/rollouts/{deployment}/pause',
    operationId: 'pauseRollout',
    access: 'operator',
    pathParams: { deployment: 'the ModelDeployment’s name' },
    response: { status: 200, description: 'the rollout, paused: the next wave waits', schema: RolloutViewSchema },
    errors: { 409: 'the rollout is not in a phase that allows it (rollout_state_conflict)' },
  },
  {
    method: 'post',
    path: '/api/v1/rollouts/{deployment}/resume',
    operationId: 'resumeRollout',
    access: 'operator',
    pathParams: { deployment: 'the ModelDeployment’s name' },
    response: { status: 200, description: 'the rollout, resumed', schema: RolloutViewSchema },
    errors: { 409: 'the rollout is not in a phase that allows it (rollout_state_conflict)' },
  },
  {
    method: 'post',
    path: '/api/v1/rollouts/{deployment}/abort',
    operationId: 'abortRollout',
    access: 'operator',
    pathParams: { deployment: 'the ModelDeployment’s name' },
    response: { status: 200, description: 'the rollout, aborted: the spokes it moved are rolling back', schema: RolloutViewSchema },
    errors: { 409: 'the rollout is not in a phase that allows it (rollout_state_conflict)' },
  },
  {
    method: 'post',
    path: '/api/v1/rollouts/{deployment}/undo',
    operationId: 'undoRollout',
    access: 'operator',
    pathParams: { deployment: 'the ModelDeployment’s name' },
    response: { status: 200, description: 'the rollout, undone: the spokes it moved are rolling back', schema: RolloutViewSchema },
    errors: { 409: 'the rollout is not in a phase that allows it (rollout_state_conflict)' },
  },
  /* ------------------------------------------------------ spoke commands */
  {
    method: 'post',
    path: '/api/v1/spokes/{name}/commands',
    operationId: 'sendSpokeCommand',
    access: 'operator',
    pathParams: { name: 'spoke name' },
    body: CreateSpokeCommand,
    response: { status: 202, description: 'accepted: the command is delivered when the spoke is online; its outcome is at …/commands/{id}', schema: SpokeCommandAcceptedSchema },
  },
  {
    method: 'get',
    path: '/api/v1/spokes/{name}/commands/{id}',
    operationId: 'getSpokeCommand',
    access: 'viewer',
    pathParams: { name: 'spoke name', id: 'command id' },
    response: { status: 200, description: 'the command with its state and the result the agent sent', schema: SpokeCommandSchema },
  },
];
