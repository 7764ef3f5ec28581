import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { DesiredDeployment } from '@flotilla/contracts';
import { readLedger } from '../../apps/agent/src/runtime/process/ledger.js';
import {
  builtinDeployment,
  CLASSIFIER_V1,
  CLASSIFIER_V2,
  ensureInferenceServerBuilt,
  EXPECTED_LOGITS,
  infer,
  logitsOf,
  payload,
  REPO_ROOT,
  sha256Of,
  tempStateDir,
  waitUntil,
} from './support.js';

/**
 * SIGKILL of the agent at random moments around the spawn of its inference
 * servers, at a first start and at a version swap: whatever the moment, the
 * next agent must leave no process with this agent's marks that its ledger
 * does not list, exactly one server per desired deployment, and every one of
 * them serving the desired version. The agent side runs in a child process
 * (test/support/process-runtime-harness.ts, compiled by `npm run build`) so
 * that it can really be killed.
 */

const HARNESS = path.join(REPO_ROOT, 'dist', 'test', 'support', 'process-runtime-harness.js');
const HARNESS_SOURCES = [path.join(REPO_ROOT, 'test', 'support', 'process-runtime-harness.ts'), path.join(REPO_ROOT, 'apps', 'agent', 'src', 'runtime', 'process')];

/** Every live process whose environment carries `stateDir` as its agent's state directory, read from /proc independently of the runtime's own scanner. */
async function processesMarkedWith(stateDir: string): Promise<{ pid: number; workload: string }[]> {
  const found: { pid: number; workload: string }[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let environ: string;
    let stat: string;
    try {
      environ = await readFile(`/proc/${name}/environ`, 'utf8');
      stat = await readFile(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    const vars = environ.split('\0');
    if (!vars.includes(`FLOTILLA_AGENT_STATE_DIR=${stateDir}`)) continue;
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
    found.push({ pid: Number(name), workload: vars.find((v) => v.startsWith('FLOTILLA_WORKLOAD='))?.slice('FLOTILLA_WORKLOAD='.length) ?? '' });
  }
  return found;
}

interface Harness {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first line `match` accepts. */
  waitForLine(what: string, match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
}

function startHarness(stateDir: string, desiredFile: string, entry: string, opts: { stopWorkloads: boolean; onLine?: (line: Record<string, unknown>) => void }): Harness {
  const args = [HARNESS, '--state-dir', stateDir, '--desired', desiredFile, '--builtin-entry', entry, '--drain-ms', '300'];
  const child = spawn(process.execPath, opts.stopWorkloads ? [...args, '--stop-workloads'] : args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const onLine = opts.onLine;
  const lines: Record<string, unknown>[] = [];
  const waiters: { match: (line: Record<string, unknown>) => boolean; resolve: (line: Record<string, unknown>) => void }[] = [];
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (text) => {
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text) as Record<string, unknown>;
    } catch {
      line = { text };
    }
    lines.push(line);
    onLine?.(line);
    for (const w of [...waiters]) {
      if (w.match(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    child,
    lines,
    exited,
    waitForLine: (what, match, timeoutMs = 60_000) => {
      const seen = lines.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`gave up waiting for ${what}; harness output:\n${lines.map((l) => JSON.stringify(l)).join('\n')}\n${stderr}`)), timeoutMs);
        waiters.push({
          match,
          resolve: (line) => {
            clearTimeout(timer);
            resolve(line);
          },
        });
        void exited.then(({ code, signal }) => {
          clearTimeout(timer);
          reject(new Error(`the harness exited (${code ?? signal}) before ${what}:\n${lines.map((l) => JSON.stringify(l)).join('\n')}\n${stderr}`));
        });
      });
    },
  };
}

describe('process runtime killed with SIGKILL around a spawn', () => {
  let entry: string;
  let workDir: string;
  /** Desired states: both deployments at their first version, then classifier-a swapped to 2.0.0. */
  const desiredFiles = { initial: '', swapped: '' };
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    entry = await ensureInferenceServerBuilt();
    if (!existsSync(HARNESS)) throw new Error(`${HARNESS} is missing: run \`npm run build\` first (npm test does)`);
    const builtAt = statSync(HARNESS).mtimeMs;
    const sources = [HARNESS_SOURCES[0] as string, ...(await readdir(HARNESS_SOURCES[1] as string)).map((f) => path.join(HARNESS_SOURCES[1] as string, f))].filter((f) => f.endsWith('.ts') && !f.endsWith('.spec.ts'));
    const stale = sources.filter((f) => statSync(f).mtimeMs > builtAt);
    if (stale.length > 0) throw new Error(`dist/ is older than ${stale.map((f) => path.relative(REPO_ROOT, f)).join(', ')}: run \`npm run build\` first (npm test does)`);
    workDir = await mkdtemp(path.join(tmpdir(), 'flotilla-kill-'));
    const v1 = { version: '1.0.0', digest: await sha256Of(CLASSIFIER_V1) };
    const v2 = { version: '2.0.0', digest: await sha256Of(CLASSIFIER_V2) };
    const at = (name: string, v: { version: string; digest: string }, file: string): DesiredDeployment =>
      builtinDeployment(name, v, { model: { name: 'classifier', version: v.version, digest: v.digest, uri: `file://${file}`, format: 'onnx' } });
    desiredFiles.initial = path.join(workDir, 'initial.json');
    desiredFiles.swapped = path.join(workDir, 'swapped.json');
    await writeFile(desiredFiles.initial, JSON.stringify(payload([at('classifier-a', v1, CLASSIFIER_V1), at('classifier-b', v2, CLASSIFIER_V2)])));
    await writeFile(desiredFiles.swapped, JSON.stringify(payload([at('classifier-a', v2, CLASSIFIER_V2), at('classifier-b', v2, CLASSIFIER_V2)])));
  }, 300_000);

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(async () => {
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  /** A fresh state directory, and whatever a trial leaves behind stopped afterwards. */
  async function trialState(): Promise<{ stateDir: string; harnesses: ChildProcess[] }> {
    const stateDir = await tempStateDir();
    const harnesses: ChildProcess[] = [];
    cleanups.push(async () => {
      for (const h of harnesses) if (h.exitCode === null && h.signalCode === null) h.kill('SIGKILL');
      for (const p of await processesMarkedWith(stateDir)) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      await rm(stateDir, { recursive: true, force: true });
    });
    return { stateDir, harnesses };
  }

  /** Runs a harness on `desiredFile` and SIGKILLs it `delayMs` after its first `anchor` line; says what the kill left. */
  async function runAndKill(stateDir: string, desiredFile: string, anchor: 'intent' | 'started', delayMs: number, harnesses: ChildProcess[]): Promise<string> {
    const msg = anchor === 'intent' ? 'recording the intent to start a workload process' : 'workload process started';
    let killScheduled = false;
    const h = startHarness(stateDir, desiredFile, entry, {
      stopWorkloads: false,
      onLine: (line) => {
        if (killScheduled || line.msg !== msg) return;
        killScheduled = true;
        setTimeout(() => h.child.kill('SIGKILL'), delayMs);
      },
    });
    harnesses.push(h.child);
    expect((await h.exited).signal).toBe('SIGKILL');
    const left = await processesMarkedWith(stateDir);
    const atKill = (await readLedger(stateDir)).ledger.processes;
    const unrecorded = left.filter((p) => !atKill.some((e) => e.pid === p.pid)).length;
    return `${left.length} running, ${unrecorded} unrecorded, ${atKill.filter((e) => e.pid === undefined).length} intents`;
  }

  /**
   * Restarts the agent on `desiredFile` and waits until it converged: every
   * process with this state directory's marks is in the ledger, one per
   * deployment, each serving the version it should, nothing draining.
   */
  async function restartAndCheck(stateDir: string, desiredFile: string, versions: Record<string, string>, harnesses: ChildProcess[]): Promise<void> {
    const h = startHarness(stateDir, desiredFile, entry, { stopWorkloads: true });
    harnesses.push(h.child);
    await h.waitForLine('every deployment Ready after the restart', (l) => l.harness === 'ready');
    const look = async () => {
      const marked = await processesMarkedWith(stateDir);
      const { ledger } = await readLedger(stateDir);
      const served: Record<string, unknown> = {};
      // In deployment order, so that two looks at the same state compare equal as JSON.
      for (const e of [...ledger.processes].sort((x, y) => x.deployment.localeCompare(y.deployment))) {
        const reply = await infer(`http://127.0.0.1:${e.port}/v2/models/classifier`).catch((err: unknown) => ({ status: 0, json: { error: String(err) } as Record<string, unknown> }));
        served[e.deployment] = reply.status === 200 ? reply.json.model_version : `status ${reply.status}`;
      }
      return {
        unlisted: marked.filter((p) => !ledger.processes.some((e) => e.pid === p.pid)),
        markedPerDeployment: marked.map((p) => p.workload.split('/')[1]).sort(),
        ledger: ledger.processes.map((e) => [e.deployment, e.role]).sort(),
        served,
      };
    };
    const want = {
      unlisted: [],
      markedPerDeployment: Object.keys(versions).sort(),
      ledger: Object.keys(versions).sort().map((d) => [d, 'active']),
      served: Object.fromEntries(Object.entries(versions).sort(([x], [y]) => x.localeCompare(y))),
    };
    // A replaced version drains for 300 ms before it stops: poll, then assert on the last look.
    let last = await look();
    const deadline = Date.now() + 20_000;
    while (JSON.stringify(last) !== JSON.stringify(want) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      last = await look();
    }
    expect(last).toEqual(want);
    const { ledger } = await readLedger(stateDir);
    for (const e of ledger.processes) {
      const { json } = await infer(`http://127.0.0.1:${e.port}/v2/models/classifier`);
      logitsOf(json).forEach((v, i) => expect(v).toBeCloseTo(EXPECTED_LOGITS[versions[e.deployment] as string]![i]!, 5));
    }
    h.child.kill('SIGTERM');
    expect((await h.exited).code).toBe(0);
    await waitUntil('the workloads to stop with the harness', async () => (await processesMarkedWith(stateDir)).length === 0, { timeoutMs: 20_000 });
  }

  // Kill delays after the anchor line, in ms: the intent (before the spawn) or the "started" line (just after it).
  const firstStart: { anchor: 'intent' | 'started'; delayMs: number }[] = [
    ...[0, 3, 10, 25, 50].map((delayMs) => ({ anchor: 'intent' as const, delayMs })),
    ...[0, 1, 5].map((delayMs) => ({ anchor: 'started' as const, delayMs })),
  ];
  const swap: { anchor: 'intent' | 'started'; delayMs: number }[] = [
    { anchor: 'intent', delayMs: 0 },
    { anchor: 'intent', delayMs: 10 },
    { anchor: 'started', delayMs: 0 },
    { anchor: 'started', delayMs: 5 },
  ];
  const outcomes: string[] = [];
  afterAll(() => {
    // What the kills hit, for whoever reads the test output.
    process.stdout.write(`kill-during-spawn trials: ${outcomes.join('; ')}\n`);
  });

  it.each(firstStart)('at a first start: nothing untracked, one serving process per deployment after a kill $delayMs ms after the $anchor line', async ({ anchor, delayMs }) => {
    const { stateDir, harnesses } = await trialState();
    outcomes.push(`start ${anchor}+${delayMs}ms: ${await runAndKill(stateDir, desiredFiles.initial, anchor, delayMs, harnesses)}`);
    await restartAndCheck(stateDir, desiredFiles.initial, { 'classifier-a': '1.0.0', 'classifier-b': '2.0.0' }, harnesses);
  }, 120_000);

  it.each(swap)('at a version swap: nothing untracked, one serving process per deployment after a kill $delayMs ms after the $anchor line', async ({ anchor, delayMs }) => {
    const { stateDir, harnesses } = await trialState();
    // The agent serves the first versions and stops, leaving them running; the next one is told to swap.
    const before = startHarness(stateDir, desiredFiles.initial, entry, { stopWorkloads: false });
    harnesses.push(before.child);
    await before.waitForLine('the first versions Ready', (l) => l.harness === 'ready');
    before.child.kill('SIGTERM');
    expect((await before.exited).code).toBe(0);

    outcomes.push(`swap ${anchor}+${delayMs}ms: ${await runAndKill(stateDir, desiredFiles.swapped, anchor, delayMs, harnesses)}`);
    await restartAndCheck(stateDir, desiredFiles.swapped, { 'classifier-a': '2.0.0', 'classifier-b': '2.0.0' }, harnesses);
  }, 120_000);
});
