import { z } from 'zod';
import { SpokeNameSchema } from './messages.js';
import { LocationSchema } from './routing.js';

/**
 * Shapes of `POST /api/v1/enroll` (DESIGN.md section 4), shared by the hub
 * (which validates requests) and the agent (which validates the response).
 */

/** Kubernetes-style label key (`[prefix/]name`) and value. */
export const LabelKeySchema = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/,
    'must be a label key: [dns-prefix/]name of letters, digits, "-", "_", "."',
  );
export const LabelValueSchema = z
  .string()
  .max(63)
  .regex(/^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/, 'must be a label value: letters, digits, "-", "_", "."');
export const LabelsSchema = z.record(LabelKeySchema, LabelValueSchema);
export type Labels = z.infer<typeof LabelsSchema>;

export const EnrollRequestSchema = z
  .object({
    token: z.string().min(1).max(512),
    name: SpokeNameSchema,
    labels: LabelsSchema.optional(),
    /** Where the appliance is (`flotilla agent enroll --location LAT,LON`); the token's location wins. */
    location: LocationSchema.optional(),
    /** What the agent found on the host (GPUs, OS, runtime); informative only. */
    facts: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type EnrollRequest = z.infer<typeof EnrollRequestSchema>;

/** Extra fields are allowed in responses (DESIGN.md: "more fields are welcome"). */
export const EnrollResponseSchema = z.object({
  spoke: z.object({ name: SpokeNameSchema, labels: z.record(z.string(), z.string()).default({}) }),
  mqtt: z.object({
    url: z.string().regex(/^(mqtts?|wss?|tcp|ssl):\/\//, 'must be an mqtt://, mqtts://, ws:// or wss:// URL'),
    clientId: z.string().min(1).max(256),
    username: z.string().min(1).max(256),
    password: z.string().min(1).max(1024),
  }),
  hubPublicKey: z.string().includes('BEGIN PUBLIC KEY', { message: 'must be a PEM public key' }),
  /** The CA of the hub's TLS listeners (HTTPS, MQTT over TLS), for the agent to pin; absent when the hub has none to hand out. */
  caCertificate: z.string().max(65536).includes('BEGIN CERTIFICATE', { message: 'must be a PEM certificate' }).optional(),
});
export type EnrollResponse = z.infer<typeof EnrollResponseSchema>;

/** Error body of every admin API failure. */
export const ApiErrorBodySchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    details: z.unknown().optional(),
  }),
});
export type ApiErrorBody = z.infer<typeof ApiErrorBodySchema>;
