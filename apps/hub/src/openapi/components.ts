import { CreateSpokeCommand } from '../commands/spoke-commands.controller.js';
import { PromoteJobBody } from '../finetune/finetune-promotions.controller.js';
import {
  ApiTokenSchema,
  ApplyReportPageSchema,
  ApplyResultSchema,
  DeleteResultSchema,
  VersionSchema,
  SigningKeySchema,
  AuditEventSchema,
  CapacitySchema,
  ConditionSchema,
  CreatedApiTokenSchema,
  CreatedEnrollmentTokenSchema,
  DeploymentStatusSchema,
  DeploymentViewSchema,
  EnrollRequestSchema,
  EnrollResponseSchema,
  EnrollmentTokenSchema,
  ErrorResponseSchema,
  FineTuneJobViewSchema,
  GitSourceDeletedSchema,
  GitSourceSchema,
  GitSyncResultSchema,
  HealthSchema,
  JobRunStatusSchema,
  PlacementViewSchema,
  PolicyObjectViewSchema,
  ReadinessSchema,
  RegisteredModelSchema,
  RegisteredModelVersionSchema,
  RegisteredModelWithVersionsSchema,
  SpokeDetailSchema,
  SpokeDiffSchema,
  SpokeSchema,
  SyncErrorSchema,
  TelemetrySchema,
  RolloutViewSchema,
  PromoteResultSchema,
  SpokeCommandAcceptedSchema,
  SpokeCommandSchema,
  pageOf,
  LocationSchema,
  RouteResponseSchema,
  UploadedArtifactSchema,
} from '@flotilla/contracts';
import { z } from 'zod';
import { CreateEnrollmentToken } from '../enrollment/enrollment-tokens.controller.js';
import { CreateGitSourceSchema } from '../git/git-source.dto.js';
import { CreateModel, CreateVersion } from '../models/models.controller.js';
import { ApplyFilesBody } from '../policy/apply.controller.js';
import { PatchSpoke } from '../spokes/spokes.controller.js';
import { CreateApiToken } from '../tokens/api-tokens.controller.js';

/**
 * The named schemas of the OpenAPI document (`components.schemas`), built
 * from the zod schemas the controllers validate with and the response
 * schemas of `@flotilla/contracts`. Responses are converted as the hub
 * sends them (zod "output": defaults filled in, every field present),
 * request bodies as clients write them ("input": defaulted fields optional).
 */

type JsonSchema = Record<string, unknown>;

/** Pages are built once so that each is one named component. */
export const Pages = {
  ApiToken: pageOf(ApiTokenSchema),
  EnrollmentToken: pageOf(EnrollmentTokenSchema),
  Spoke: pageOf(SpokeSchema),
  RegisteredModel: pageOf(RegisteredModelSchema),
  ModelVersion: pageOf(RegisteredModelVersionSchema),
  PolicyObject: pageOf(PolicyObjectViewSchema),
  Placement: pageOf(PlacementViewSchema),
  ModelDeployment: pageOf(DeploymentViewSchema),
  FineTuneJob: pageOf(FineTuneJobViewSchema),
  GitSource: pageOf(GitSourceSchema),
  AuditEvent: pageOf(AuditEventSchema),
};

const RESPONSE_COMPONENTS: [string, z.ZodType][] = [
  ['Error', ErrorResponseSchema],
  ['Health', HealthSchema],
  ['Readiness', ReadinessSchema],
  ['ApiToken', ApiTokenSchema],
  ['CreatedApiToken', CreatedApiTokenSchema],
  ['ApiTokenPage', Pages.ApiToken],
  ['EnrollmentToken', EnrollmentTokenSchema],
  ['CreatedEnrollmentToken', CreatedEnrollmentTokenSchema],
  ['EnrollmentTokenPage', Pages.EnrollmentToken],
  ['Enrollment', EnrollResponseSchema],
  ['Condition', ConditionSchema],
  ['Capacity', CapacitySchema],
  ['DeploymentStatus', DeploymentStatusSchema],
  ['JobRunStatus', JobRunStatusSchema],
  ['Telemetry', TelemetrySchema],
  ['Spoke', SpokeSchema],
  ['SpokeDetail', SpokeDetailSchema],
  ['SpokePage', Pages.Spoke],
  ['RegisteredModel', RegisteredModelSchema],
  ['RegisteredModelWithVersions', RegisteredModelWithVersionsSchema],
  ['RegisteredModelPage', Pages.RegisteredModel],
  ['ModelVersion', RegisteredModelVersionSchema],
  ['ModelVersionPage', Pages.ModelVersion],
  ['SpokeDiff', SpokeDiffSchema],
  ['ApplyResult', ApplyResultSchema],
  ['ApplyReportPage', ApplyReportPageSchema],
  ['DeleteResult', DeleteResultSchema],
  ['Version', VersionSchema],
  ['PolicyObject', PolicyObjectViewSchema],
  ['PolicyObjectPage', Pages.PolicyObject],
  ['Placement', PlacementViewSchema],
  ['PlacementPage', Pages.Placement],
  ['ModelDeployment', DeploymentViewSchema],
  ['ModelDeploymentPage', Pages.ModelDeployment],
  ['FineTuneJob', FineTuneJobViewSchema],
  ['FineTuneJobPage', Pages.FineTuneJob],
  ['SyncError', SyncErrorSchema],
  ['GitSource', GitSourceSchema],
  ['GitSourcePage', Pages.GitSource],
  ['GitSyncResult', GitSyncResultSchema],
  ['GitSourceDeleted', GitSourceDeletedSchema],
  ['AuditEvent', AuditEventSchema],
  ['AuditEventPage', Pages.AuditEvent],
  ['SigningKey', SigningKeySchema],
  ['Location', LocationSchema],
  ['RouteResponse', RouteResponseSchema],
  ['Rollout', RolloutViewSchema],
  ['SpokeCommandAccepted', SpokeCommandAcceptedSchema],
  ['SpokeCommand', SpokeCommandSchema],
  ['PromoteResult', PromoteResultSchema],
  ['UploadedArtifact', UploadedArtifactSchema],
];

const REQUEST_COMPONENTS: [string, z.ZodType][] = [
  ['CreateApiTokenRequest', CreateApiToken],
  ['CreateEnrollmentTokenRequest', CreateEnrollmentToken],
  ['EnrollRequest', EnrollRequestSchema],
  ['PatchSpokeRequest', PatchSpoke],
  ['CreateModelRequest', CreateModel],
  ['CreateModelVersionRequest', CreateVersion],
  ['CreateGitSourceRequest', CreateGitSourceSchema],
  ['ApplyFilesRequest', ApplyFilesBody],
  ['CreateSpokeCommandRequest', CreateSpokeCommand],
  ['PromoteJobRequest', PromoteJobBody],
];

/**
 * zod marks `.includes()`, `.startsWith()` and `.endsWith()` with formats of
 * its own next to the pattern that does the work; validators do not know
 * those formats, so only the pattern is kept.
 */
const ZOD_ONLY_FORMATS = new Set(['includes', 'starts_with', 'ends_with']);
function dropZodFormats(ctx: { jsonSchema: Record<string, unknown> }): void {
  if (typeof ctx.jsonSchema.format === 'string' && ZOD_ONLY_FORMATS.has(ctx.jsonSchema.format)) delete ctx.jsonSchema.format;
}

const componentRef = (name: string) => ({ $ref: `#/components/schemas/${name}` });

/** Named schemas, and the reference to use for each zod schema that has a name. */
export class SchemaComponents {
  private readonly names = new Map<z.ZodType, string>();

  constructor(
    private readonly responses: [string, z.ZodType][] = RESPONSE_COMPONENTS,
    private readonly requests: [string, z.ZodType][] = REQUEST_COMPONENTS,
  ) {
    for (const [name, schema] of [...responses, ...requests]) {
      if (this.names.has(schema)) throw new Error(`OpenAPI component ${name}: the same schema is already named ${this.names.get(schema)}`);
      this.names.set(schema, name);
    }
  }

  /** `{$ref}` to the component of a named schema; throws for a schema without a name. */
  ref(schema: z.ZodType): { $ref: string } {
    const name = this.names.get(schema);
    if (!name) throw new Error('this zod schema is not an OpenAPI component; add it to components.ts');
    return componentRef(name);
  }

  /** Every component, as JSON Schema draft 2020-12 (what OpenAPI 3.1 uses). */
  schemas(): Record<string, JsonSchema> {
    return { ...this.convert(this.responses, 'output'), ...this.convert(this.requests, 'input') };
  }

  private convert(entries: [string, z.ZodType][], io: 'input' | 'output'): Record<string, JsonSchema> {
    const registry = z.registry<{ id: string }>();
    for (const [id, schema] of entries) registry.add(schema, { id });
    const converted = z.toJSONSchema(registry, {
      io,
      target: 'draft-2020-12',
      unrepresentable: 'any',
      uri: (id) => `#/components/schemas/${id}`,
      override: dropZodFormats,
    }) as { schemas: Record<string, JsonSchema> };
    const out: Record<string, JsonSchema> = {};
    for (const [id, schema] of Object.entries(converted.schemas)) {
      // Each is a fragment of the document, not a standalone schema resource.
      const { $schema: _schema, $id: _id, ...rest } = schema;
      out[id] = rest;
    }
    return out;
  }
}

/** One query-string schema as OpenAPI parameters, each with its own description. */
export function queryParameters(query: z.ZodObject): Record<string, unknown>[] {
  const json = z.toJSONSchema(query, { io: 'input', target: 'draft-2020-12', unrepresentable: 'any', override: dropZodFormats }) as {
    properties?: Record<string, JsonSchema>;
    required?: string[];
  };
  return Object.entries(json.properties ?? {}).map(([name, schema]) => {
    const { description, ...rest } = schema;
    return {
      name,
      in: 'query',
      required: (json.required ?? []).includes(name),
      ...(typeof description === 'string' ? { description } : {}),
      schema: rest,
    };
  });
}
