import { createPublicKey } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { formatIssues, SpokeNameSchema } from '@flotilla/contracts';
import { ensurePrivateDir, writeFileAtomic } from './atomic-write.js';

/**
 * The agent's state directory (DESIGN.md section 7): what it was given at
 * enrolment and the last desired state it applied, so it can keep serving
 * that state with no broker (offline first). Files are written atomically and
 * readable by the owner only.
 */

export const DEFAULT_STATE_DIR = '/var/lib/flotilla-agent';
export const CREDENTIALS_FILE = 'credentials.json';
export const APPLIED_ENVELOPE_FILE = 'applied-envelope.json';

export const AgentCredentialsSchema = z
  .object({
    hubUrl: z.url({ protocol: /^https?$/ }),
    spoke: SpokeNameSchema,
    labels: z.record(z.string(), z.string()),
    mqtt: z
      .object({
        url: z.string().min(1),
        clientId: z.string().min(1),
        username: z.string().min(1),
        password: z.string().min(1),
      })
      .strict(),
    hubPublicKey: z.string().min(1),
    /** CA certificate (PEM) pinned at enrolment: the hub's, or the one given with `--ca`. */
    caCertificate: z.string().min(1).optional(),
    enrolledAt: z.iso.datetime({ offset: true }),
  })
  .strict();
export type AgentCredentials = z.infer<typeof AgentCredentialsSchema>;

export type StateFileProblem = 'Missing' | 'Corrupt';

/** A state file that is missing or unreadable; the message names the file and what to do. */
export class StateFileError extends Error {
  override readonly name = 'StateFileError';
  constructor(
    readonly file: string,
    readonly problem: StateFileProblem,
    message: string,
  ) {
    super(message);
  }
}

export const credentialsPath = (stateDir: string): string => join(stateDir, CREDENTIALS_FILE);
export const appliedEnvelopePath = (stateDir: string): string => join(stateDir, APPLIED_ENVELOPE_FILE);

async function readIfExists(file: string): Promise<Buffer | null> {
  try {
    return await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new StateFileError(file, 'Corrupt', `cannot read ${file}: ${(err as Error).message}`);
  }
}

function parseJson(file: string, bytes: Buffer, recovery: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new StateFileError(file, 'Corrupt', `${file} is not valid JSON (${(err as Error).message}); ${recovery}`);
  }
}

const startOver = (stateDir: string): string =>
  `to start over, delete ${credentialsPath(stateDir)} and ${appliedEnvelopePath(stateDir)} and enrol again with a new token`;

export async function hasCredentials(stateDir: string): Promise<boolean> {
  try {
    await stat(credentialsPath(stateDir));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Reads and checks credentials.json, including that the pinned hub key is an Ed25519 public key. */
export async function readCredentials(stateDir: string): Promise<AgentCredentials> {
  const file = credentialsPath(stateDir);
  const bytes = await readIfExists(file);
  if (bytes === null) {
    throw new StateFileError(
      file,
      'Missing',
      `no credentials at ${file}: this agent is not enrolled; run \`flotilla agent enroll --hub URL --token TOKEN --name NAME --state-dir ${stateDir}\` first`,
    );
  }
  const parsed = AgentCredentialsSchema.safeParse(parseJson(file, bytes, startOver(stateDir)));
  if (!parsed.success) {
    throw new StateFileError(file, 'Corrupt', `${file} is not valid: ${formatIssues(parsed.error.issues)}; ${startOver(stateDir)}`);
  }
  try {
    const key = createPublicKey(parsed.data.hubPublicKey);
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`it is a ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519`);
  } catch (err) {
    throw new StateFileError(file, 'Corrupt', `${file}: hubPublicKey is not a usable Ed25519 public key (${(err as Error).message}); ${startOver(stateDir)}`);
  }
  return parsed.data;
}

export async function writeCredentials(stateDir: string, credentials: AgentCredentials): Promise<void> {
  const checked = AgentCredentialsSchema.parse(credentials);
  await ensurePrivateDir(stateDir);
  await writeFileAtomic(credentialsPath(stateDir), `${JSON.stringify(checked, null, 2)}\n`, 0o600);
}

/**
 * The last applied envelope as it was received (raw JSON, not yet verified:
 * the caller verifies it against the pinned key), or null before the first.
 */
export async function readAppliedEnvelope(stateDir: string): Promise<{ raw: unknown; bytes: Buffer } | null> {
  const file = appliedEnvelopePath(stateDir);
  const bytes = await readIfExists(file);
  if (bytes === null) return null;
  const raw = parseJson(file, bytes, `delete it to take the hub's current desired state at the next connection`);
  return { raw, bytes };
}

/** Stores the envelope bytes verbatim, so what is on disk is exactly what the hub signed. */
export async function writeAppliedEnvelope(stateDir: string, envelope: string | Uint8Array): Promise<void> {
  await ensurePrivateDir(stateDir);
  await writeFileAtomic(appliedEnvelopePath(stateDir), envelope, 0o600);
}

/** Removes an applied envelope left over from a previous enrolment. */
export async function removeAppliedEnvelope(stateDir: string): Promise<void> {
  await rm(appliedEnvelopePath(stateDir), { force: true });
}
