import { createPublicKey } from 'node:crypto';
import {
  ApiErrorBodySchema,
  EnrollRequestSchema,
  EnrollResponseSchema,
  formatIssues,
  type EnrollRequest,
} from '@flotilla/contracts';
import {
  type AgentCredentials,
  credentialsPath,
  hasCredentials,
  readCredentials,
  removeAppliedEnvelope,
  writeCredentials,
} from '../state/state-dir.js';

export interface EnrollOptions {
  /** Hub base URL, e.g. `http://hub.example:8080` (the API lives under /api/v1). */
  hubUrl: string;
  /** One-time enrolment token from `POST /api/v1/enrollment-tokens`. */
  token: string;
  /** Spoke name (DNS label). */
  name: string;
  labels?: Record<string, string>;
  /** Where the appliance is, for routing (the enrolment token's location wins). */
  location?: { lat: number; lon: number };
  /** What the agent knows about its host, sent for the hub to show. */
  facts?: Record<string, unknown>;
  stateDir: string;
  /**
   * CA certificate (PEM) the user brought (`--ca`): pinned when the hub hands
   * out none. The HTTPS request itself verifies against the process's CA store
   * (the CLI adds this CA to it); certificates are never left unchecked.
   */
  ca?: string;
  /** Defaults to the global fetch; injectable for tests and proxies. */
  fetch?: typeof fetch;
  signal?: AbortSignal;
  /** Gives up on the hub after this long (default 30 s). */
  timeoutMs?: number;
}

export type EnrollErrorCode = 'InvalidInput' | 'AlreadyEnrolled' | 'HubUnreachable' | 'HubRefused' | 'InvalidResponse';

export class EnrollError extends Error {
  override readonly name = 'EnrollError';
  constructor(
    readonly code: EnrollErrorCode,
    message: string,
    /** For HubRefused: the HTTP status and the hub's `{error: {code, message}}` as sent. */
    readonly hub?: { status: number; error?: { code: string; message: string; details?: unknown } },
  ) {
    super(message);
  }
}

const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * Enrols this appliance with the hub once: trades the enrolment token for
 * MQTT credentials and the hub's signing key, and writes them to the state
 * directory. Refuses to overwrite an existing enrolment.
 */
export async function enroll(opts: EnrollOptions): Promise<AgentCredentials> {
  const endpoint = enrollEndpoint(opts.hubUrl);
  const request = EnrollRequestSchema.safeParse({ token: opts.token, name: opts.name, labels: opts.labels, location: opts.location, facts: opts.facts });
  if (!request.success) {
    throw new EnrollError('InvalidInput', `cannot enrol: ${formatIssues(request.error.issues)}`);
  }
  await refuseIfEnrolled(opts.stateDir);

  const fetchImpl = opts.fetch ?? globalThis.fetch;
  const signals = [AbortSignal.timeout(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS)];
  if (opts.signal) signals.push(opts.signal);
  let response: Response;
  let text: string;
  try {
    response = await fetchImpl(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(request.data satisfies EnrollRequest),
      signal: AbortSignal.any(signals),
    });
    text = await response.text();
  } catch (err) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    const why = fetchFailure(err);
    const untrusted = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|unable to verify|self-signed/i.test(why);
    throw new EnrollError(
      'HubUnreachable',
      `cannot reach the hub at ${endpoint}: ${why}` +
        (untrusted ? ' (the hub certificate is not trusted: pass --ca FILE or set FLOTILLA_CA to the hub CA, $FLOTILLA_HOME/tls/ca.pem on the hub)' : ''),
    );
  }

  if (response.status !== 201 && response.status !== 200) {
    throw refusal(endpoint, response.status, text);
  }

  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new EnrollError('InvalidResponse', `hub at ${endpoint} answered HTTP ${response.status} with a body that is not JSON: ${snippet(text)}`);
  }
  const parsed = EnrollResponseSchema.safeParse(body);
  if (!parsed.success) {
    throw new EnrollError('InvalidResponse', `hub at ${endpoint} answered with an unexpected enrolment response: ${formatIssues(parsed.error.issues)}`);
  }
  const answer = parsed.data;
  try {
    const key = createPublicKey(answer.hubPublicKey);
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`it is a ${key.asymmetricKeyType ?? 'unknown'} key`);
  } catch (err) {
    throw new EnrollError('InvalidResponse', `hub at ${endpoint} sent a hubPublicKey that is not an Ed25519 public key: ${(err as Error).message}`);
  }

  const credentials: AgentCredentials = {
    hubUrl: new URL(opts.hubUrl).toString().replace(/\/$/, ''),
    // The hub's name is authoritative: it is the one its topics and ACL use.
    spoke: answer.spoke.name,
    labels: answer.spoke.labels,
    mqtt: answer.mqtt,
    hubPublicKey: answer.hubPublicKey,
    ...pinnedCa(answer.caCertificate, opts.ca),
    enrolledAt: new Date().toISOString(),
  };
  // An applied envelope without credentials is left from an earlier identity; it must not be replayed.
  await removeAppliedEnvelope(opts.stateDir);
  await writeCredentials(opts.stateDir, credentials);
  return credentials;
}

/** Both the hub's CA and one the user brought (a broker with its own CA, say), once each. */
function pinnedCa(fromHub: string | undefined, brought: string | undefined): { caCertificate?: string } {
  const pems = [...new Set([fromHub, brought].filter((p): p is string => Boolean(p?.trim())).map((p) => p.trim()))];
  return pems.length ? { caCertificate: pems.join('\n') + '\n' } : {};
}

function enrollEndpoint(hubUrl: string): string {
  let url: URL;
  try {
    url = new URL(hubUrl);
  } catch {
    throw new EnrollError('InvalidInput', `cannot enrol: hub URL "${hubUrl}" is not a URL (expected e.g. http://hub.example:8080)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new EnrollError('InvalidInput', `cannot enrol: hub URL "${hubUrl}" must be http:// or https://`);
  }
  return `${url.toString().replace(/\/+$/, '')}/api/v1/enroll`;
}

async function refuseIfEnrolled(stateDir: string): Promise<void> {
  if (!(await hasCredentials(stateDir))) return;
  const file = credentialsPath(stateDir);
  const who = await readCredentials(stateDir).then(
    (c) => ` as spoke "${c.spoke}" with ${c.hubUrl} (enrolled ${c.enrolledAt})`,
    () => '',
  );
  throw new EnrollError(
    'AlreadyEnrolled',
    `${stateDir} already holds credentials${who}; to start over, delete ${file} (and applied-envelope.json beside it) ` +
      'and enrol again with a new token, or use another --state-dir',
  );
}

function refusal(endpoint: string, status: number, text: string): EnrollError {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const parsed = ApiErrorBodySchema.safeParse(body);
  if (parsed.success) {
    const { code, message } = parsed.data.error;
    return new EnrollError('HubRefused', `hub refused enrolment (HTTP ${status} ${code}): ${message}`, {
      status,
      error: parsed.data.error,
    });
  }
  return new EnrollError('HubRefused', `hub at ${endpoint} refused enrolment with HTTP ${status}: ${snippet(text)}`, { status });
}

/** undici reports "fetch failed" and puts the reason (ECONNREFUSED, timeout...) in `cause`. */
function fetchFailure(err: unknown): string {
  // Duck-typed: the error may come from another realm, where instanceof Error is false.
  const e = err as { message?: unknown; name?: unknown; cause?: { message?: unknown; code?: unknown } } | null;
  if (e?.name === 'TimeoutError') return 'no answer in time';
  const cause = e?.cause;
  if (cause && typeof cause.message === 'string' && cause.message !== '') {
    return typeof cause.code === 'string' && !cause.message.includes(cause.code) ? `${cause.code}: ${cause.message}` : cause.message;
  }
  return typeof e?.message === 'string' ? e.message : String(err);
}

function snippet(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (flat === '') return '(empty body)';
  return flat.length > 300 ? `${flat.slice(0, 300)}...` : flat;
}
