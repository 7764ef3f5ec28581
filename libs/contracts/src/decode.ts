import type { z } from 'zod';
import { formatIssues } from './issues.js';
import { MAX_MESSAGE_BYTES } from './limits.js';
import {
  CommandSchema,
  EnvelopeSchema,
  EventSchema,
  PresenceSchema,
  StatusReportSchema,
  TelemetrySchema,
  type AgentEvent,
  type Command,
  type Envelope,
  type Presence,
  type StatusReport,
  type Telemetry,
} from './messages.js';
import type { SpokeChannel } from './topics.js';

/**
 * Boundary decoding of every MQTT payload: size, UTF-8 JSON, schema. Returns a
 * coded result and never throws, so a hostile or broken peer cannot crash the
 * receiver. For `desired` the schema check is structural only: the signature
 * is checked by `verifyEnvelope` on `raw`.
 */

export interface ChannelMessages {
  desired: Envelope;
  commands: Command;
  status: StatusReport;
  telemetry: Telemetry;
  events: AgentEvent;
  presence: Presence;
}

const SCHEMAS: { [C in SpokeChannel]: z.ZodType<ChannelMessages[C]> } = {
  desired: EnvelopeSchema,
  commands: CommandSchema,
  status: StatusReportSchema,
  telemetry: TelemetrySchema,
  events: EventSchema,
  presence: PresenceSchema,
};

export type DecodeErrorCode = 'TooLarge' | 'InvalidJson' | 'SchemaViolation';

export type DecodeResult<C extends SpokeChannel> =
  | { ok: true; channel: C; value: ChannelMessages[C]; /** The JSON as received, before defaults were filled. */ raw: unknown }
  | { ok: false; channel: C; code: DecodeErrorCode; message: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function decodeMessage<C extends SpokeChannel>(channel: C, payload: Uint8Array | string): DecodeResult<C> {
  const schema = SCHEMAS[channel] as z.ZodType<ChannelMessages[C]> | undefined;
  if (schema === undefined) {
    return { ok: false, channel, code: 'SchemaViolation', message: `unknown channel "${String(channel)}"` };
  }
  const size = typeof payload === 'string' ? Buffer.byteLength(payload, 'utf8') : payload.byteLength;
  if (size > MAX_MESSAGE_BYTES) {
    return {
      ok: false,
      channel,
      code: 'TooLarge',
      message: `${channel} message is ${size} bytes, over the limit of ${MAX_MESSAGE_BYTES}`,
    };
  }
  let raw: unknown;
  try {
    const text = typeof payload === 'string' ? payload : utf8.decode(payload);
    if (text.trim() === '') throw new Error('empty payload');
    raw = JSON.parse(text);
  } catch (err) {
    return { ok: false, channel, code: 'InvalidJson', message: `${channel} message is not UTF-8 JSON: ${(err as Error).message}` };
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    return {
      ok: false,
      channel,
      code: 'SchemaViolation',
      message: `${channel} message violates the schema: ${formatIssues(parsed.error.issues)}`,
    };
  }
  return { ok: true, channel, value: parsed.data, raw };
}
