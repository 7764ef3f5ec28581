import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  generateSigningKeyPair,
  publicKeyPem,
  signEnvelope,
  type DesiredPayload,
  type Envelope,
  type SigningKeyPair,
} from '@flotilla/contracts';
import type { RuntimeReport, WorkloadRuntime } from '../../../apps/agent/src/runtime/runtime.js';
import { NoneRuntime } from '../../../apps/agent/src/runtime/none/none-runtime.js';
import { writeCredentials } from '../../../apps/agent/src/state/state-dir.js';

const fixture = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'fixtures', 'desired-payload.json');

/** The fixture payload, made distinct per generation so the runtime can tell which one it got. */
export function payloadFor(generation: number): DesiredPayload {
  const payload = JSON.parse(readFileSync(fixture, 'utf8')) as DesiredPayload;
  payload.settings.telemetryIntervalSeconds = 10 + generation;
  return payload;
}

/** Signs envelopes the way the hub does. */
export class TestSigner {
  readonly keys: SigningKeyPair = generateSigningKeyPair();
  get publicKeyPem(): string {
    return publicKeyPem(this.keys.publicKey);
  }
  envelope(spoke: string, generation: number, payload: DesiredPayload = payloadFor(generation)): Envelope {
    return signEnvelope({ v: 1, spoke, generation, issuedAt: new Date().toISOString(), payload }, this.keys.privateKey);
  }
}

/** A temporary state directory holding credentials for `spoke` that pin `signer`'s key. */
export async function enrolledStateDir(spoke: string, brokerUrl: string, signer: TestSigner): Promise<{ stateDir: string; cleanup(): Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'flotilla-agent-'));
  const stateDir = join(root, 'state');
  await writeCredentials(stateDir, {
    hubUrl: 'http://127.0.0.1:1',
    spoke,
    labels: {},
    mqtt: { url: brokerUrl, clientId: `spoke-${spoke}`, username: spoke, password: 'test-password' },
    hubPublicKey: signer.publicKeyPem,
    enrolledAt: new Date().toISOString(),
  });
  return { stateDir, cleanup: () => rm(root, { recursive: true, force: true }) };
}

/** NoneRuntime that records every payload it was asked to reconcile. */
export class RecordingRuntime implements WorkloadRuntime {
  readonly kind = 'none' as const;
  readonly calls: DesiredPayload[] = [];
  private readonly inner = new NoneRuntime();
  private listener: (() => void) | null = null;
  fail: string | null = null;

  async reconcile(desired: DesiredPayload, signal: AbortSignal): Promise<RuntimeReport> {
    this.calls.push(desired);
    if (this.fail !== null) throw new Error(this.fail);
    return this.inner.reconcile(desired, signal);
  }

  onChange(listener: () => void): void {
    this.listener = listener;
  }

  /** Simulates the runtime noticing a change by itself. */
  changed(): void {
    this.listener?.();
  }

  /** How many reconciles were given the payload of this generation (see payloadFor). */
  callsFor(generation: number): number {
    const marker = payloadFor(generation).settings.telemetryIntervalSeconds;
    return this.calls.filter((c) => c.settings.telemetryIntervalSeconds === marker).length;
  }

  async close(): Promise<void> {}
}
