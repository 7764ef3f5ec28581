import pino from 'pino';
import type { DesiredPayload } from '@flotilla/contracts';
import type { RuntimeReport, WorkloadRuntime } from '../runtime/runtime.js';
import { ReconcileRunner, type ReconcileResult } from './runner.js';

const logger = pino({ level: 'silent' });

function payload(telemetryIntervalSeconds: number): DesiredPayload {
  return { settings: { telemetryIntervalSeconds }, deployments: [], fineTuneJobs: [] };
}

/** Waits for `predicate` with a deadline; fails with `what` if it never holds. */
async function until(what: string, predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

interface Call {
  payload: DesiredPayload;
  signal: AbortSignal;
  resolve: (report: RuntimeReport) => void;
  reject: (err: Error) => void;
}

/** A runtime whose runs finish only when the test says so. */
class ScriptedRuntime implements WorkloadRuntime {
  readonly kind = 'none' as const;
  readonly calls: Call[] = [];
  active = 0;
  maxActive = 0;
  reconcile(desired: DesiredPayload, signal: AbortSignal): Promise<RuntimeReport> {
    this.active += 1;
    this.maxActive = Math.max(this.maxActive, this.active);
    return new Promise<RuntimeReport>((resolve, reject) => {
      let settled = false;
      const done = (): void => {
        if (!settled) this.active -= 1;
        settled = true;
      };
      this.calls.push({
        payload: desired,
        signal,
        resolve: (r) => {
          done();
          resolve(r);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      });
      signal.addEventListener('abort', () => {
        done();
        reject(signal.reason as Error);
      });
    });
  }
  async close(): Promise<void> {}
}

const report = (phase: 'Pending' | 'Ready'): RuntimeReport => ({
  deployments: [
    { name: 'd', phase, readyReplicas: 0, desiredReplicas: 1, servingVersion: null, endpoint: null, compliance: 'Pending', conditions: [], message: '' },
  ],
  jobs: [],
});

describe('ReconcileRunner', () => {
  let runner: ReconcileRunner | undefined;
  afterEach(async () => {
    await runner?.stop();
  });

  function start(runtime: WorkloadRuntime, results: ReconcileResult[], extra: Partial<ConstructorParameters<typeof ReconcileRunner>[0]> = {}): ReconcileRunner {
    runner = new ReconcileRunner({ runtime, logger, intervalMs: 3_600_000, onResult: (r) => results.push(r), random: () => 0, ...extra });
    runner.start();
    return runner;
  }

  it('does nothing until there is a desired state', async () => {
    const runtime = new ScriptedRuntime();
    const r = start(runtime, []);
    r.trigger();
    await new Promise((resolve) => setImmediate(resolve));
    expect(runtime.calls).toHaveLength(0);
  });

  it('reconciles a new desired state and says whether the report changed', async () => {
    const runtime = new ScriptedRuntime();
    const results: ReconcileResult[] = [];
    const r = start(runtime, results);
    r.setDesired(1, payload(30));
    await until('first call', () => runtime.calls.length === 1);
    runtime.calls[0]!.resolve(report('Pending'));
    await until('first result', () => results.length === 1);
    expect(results[0]).toMatchObject({ generation: 1, ok: true, changed: true, error: null });
    expect(r.snapshot()).toMatchObject({ reconciledGeneration: 1, desiredGeneration: 1, runs: 1, report: report('Pending') });

    r.trigger();
    await until('second call', () => runtime.calls.length === 2);
    runtime.calls[1]!.resolve(report('Pending'));
    await until('second result', () => results.length === 2);
    expect(results[1]).toMatchObject({ ok: true, changed: false });
  });

  it('runs one reconcile at a time and folds triggers during a run into one more run', async () => {
    const runtime = new ScriptedRuntime();
    const r = start(runtime, []);
    r.setDesired(1, payload(30));
    await until('first call', () => runtime.calls.length === 1);
    r.trigger();
    r.trigger();
    r.trigger();
    await new Promise((resolve) => setImmediate(resolve));
    expect(runtime.calls).toHaveLength(1);
    runtime.calls[0]!.resolve(report('Pending'));
    await until('follow-up call', () => runtime.calls.length === 2);
    runtime.calls[1]!.resolve(report('Pending'));
    await until('idle', () => !r.snapshot().running);
    await new Promise((resolve) => setImmediate(resolve));
    expect(runtime.calls).toHaveLength(2);
    expect(runtime.maxActive).toBe(1);
  });

  it('aborts a run for a stale generation and reconciles the newer one, reporting only the newer', async () => {
    const runtime = new ScriptedRuntime();
    const results: ReconcileResult[] = [];
    const r = start(runtime, results);
    r.setDesired(1, payload(30));
    await until('first call', () => runtime.calls.length === 1);
    r.setDesired(2, payload(60));
    expect(runtime.calls[0]!.signal.aborted).toBe(true);
    await until('second call', () => runtime.calls.length === 2);
    expect(runtime.calls[1]!.payload.settings.telemetryIntervalSeconds).toBe(60);
    runtime.calls[1]!.resolve(report('Ready'));
    await until('result', () => results.length === 1);
    expect(results).toEqual([expect.objectContaining({ generation: 2, ok: true })]);
    expect(r.snapshot()).toMatchObject({ reconciledGeneration: 2, errors: 0 });
  });

  it('does not abort a run when the same generation is set again', async () => {
    const runtime = new ScriptedRuntime();
    const r = start(runtime, []);
    r.setDesired(1, payload(30));
    await until('first call', () => runtime.calls.length === 1);
    r.setDesired(1, payload(30));
    expect(runtime.calls[0]!.signal.aborted).toBe(false);
  });

  it('requeues a failed run with backoff until it succeeds, keeping the last good report', async () => {
    let failures = 2;
    const runtime: WorkloadRuntime = {
      kind: 'none',
      reconcile: async () => {
        if (failures > 0) {
          failures -= 1;
          throw new Error('kube-apiserver unreachable');
        }
        return report('Ready');
      },
      close: async () => undefined,
    };
    const results: ReconcileResult[] = [];
    const r = start(runtime, results, { backoff: { initialMs: 1, maxMs: 4 } });
    r.setDesired(1, payload(30));
    await until('success after retries', () => results.some((x) => x.ok));
    expect(results.map((x) => x.ok)).toEqual([false, false, true]);
    expect(results[0]).toMatchObject({ error: 'kube-apiserver unreachable', changed: true, report: null });
    expect(results[1]).toMatchObject({ changed: false });
    expect(r.snapshot()).toMatchObject({ errors: 2, consecutiveErrors: 0, lastError: null, reconciledGeneration: 1 });
  });

  it('requeues after a successful run at the interval, without any trigger', async () => {
    const runtime = new ScriptedRuntime();
    const r = start(runtime, [], { intervalMs: 2 });
    r.setDesired(1, payload(30));
    for (let n = 1; n <= 3; n += 1) {
      await until(`call ${n}`, () => runtime.calls.length === n);
      runtime.calls[n - 1]!.resolve(report('Ready'));
    }
    await until('fourth call', () => runtime.calls.length === 4);
  });

  it('stops: aborts the run in flight and never runs again', async () => {
    const runtime = new ScriptedRuntime();
    const r = start(runtime, [], { intervalMs: 1 });
    r.setDesired(1, payload(30));
    await until('first call', () => runtime.calls.length === 1);
    await r.stop();
    expect(runtime.calls[0]!.signal.aborted).toBe(true);
    r.trigger();
    r.setDesired(2, payload(30));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(runtime.calls).toHaveLength(1);
  });
});
