import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
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
 * servers: whatever the moment, the next agent must leave no process with
 * this agent's marks that its ledger does not list, exactly one server per
 * desired deployment, and every one of them serving. The agent side runs in
 * a child process (test/support/process-runtime-harness.ts, compiled by
 * `npm run build`) so that it can really be killed.
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

function startHarness(stateDir: string, desiredFile: string, entry: string, onLine?: (line: Record<string, unknown>) => void): Harness {
  const child = spawn(process.execPath, [HARNESS, '--state-dir', stateDir, '--desired', desiredFile, '--builtin-entry', entry, '--stop-workloads'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
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
  let desiredFile: string;
  let workDir: string;
  const expected = new Map<string, string>();
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
    const deployments = [
      builtinDeployment('classifier-a', v1, { model: { name: 'classifier', version: v1.version, digest: v1.digest, uri: `file://${CLASSIFIER_V1}`, format: 'onnx' } }),
      builtinDeployment('classifier-b', v2, { model: { name: 'classifier', version: v2.version, digest: v2.digest, uri: `file://${CLASSIFIER_V2}`, format: 'onnx' } }),
    ];
    expected.set('classifier-a', '1.0.0').set('classifier-b', '2.0.0');
    desiredFile = path.join(workDir, 'desired.json');
    await writeFile(desiredFile, JSON.stringify(payload(deployments)));
  }, 300_000);

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(async () => {
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  // Kill delays after the anchor line, in ms: the intent (before the spawn) or the "started" line (just after it).
  const trials: { anchor: 'intent' | 'started'; delayMs: number }[] = [
    ...[0, 3, 10, 25, 50].map((delayMs) => ({ anchor: 'intent' as const, delayMs })),
    ...[0, 1, 5].map((delayMs) => ({ anchor: 'started' as const, delayMs })),
  ];
  const outcomes: string[] = [];
  afterAll(() => {
    // What the kills hit, for whoever reads the test output.
    process.stdout.write(`kill-during-spawn trials: ${outcomes.join('; ')}\n`);
  });

  it.each(trials)('leaves nothing untracked and one serving process per deployment after a kill $delayMs ms after the $anchor line', async ({ anchor, delayMs }) => {
    const stateDir = await tempStateDir();
    const killers: ChildProcess[] = [];
    cleanups.push(async () => {
      for (const k of killers) if (k.exitCode === null && k.signalCode === null) k.kill('SIGKILL');
      // Whatever a failed trial left: stop it so that later trials and tests start clean.
      for (const p of await processesMarkedWith(stateDir)) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      await rm(stateDir, { recursive: true, force: true });
    });

    const msg = anchor === 'intent' ? 'recording the intent to start a workload process' : 'workload process started';
    let killScheduled = false;
    const first = startHarness(stateDir, desiredFile, entry, (line) => {
      if (killScheduled || line.msg !== msg) return;
      killScheduled = true;
      setTimeout(() => first.child.kill('SIGKILL'), delayMs);
    });
    killers.push(first.child);
    const firstExit = await first.exited;
    expect(firstExit.signal).toBe('SIGKILL');

    // What the kill left: processes whose pid the ledger has not (yet) recorded.
    const left = await processesMarkedWith(stateDir);
    const ledgerAtKill = (await readLedger(stateDir)).ledger.processes;
    const unrecorded = left.filter((p) => !ledgerAtKill.some((e) => e.pid === p.pid));
    const intents = ledgerAtKill.filter((e) => e.pid === undefined).length;
    outcomes.push(`${anchor}+${delayMs}ms: ${left.length} running, ${unrecorded.length} unrecorded, ${intents} intents`);

    const second = startHarness(stateDir, desiredFile, entry);
    killers.push(second.child);
    const ready = await second.waitForLine('every deployment Ready after the restart', (l) => l.harness === 'ready');

    const marked = await processesMarkedWith(stateDir);
    const { ledger } = await readLedger(stateDir);
    const listed = new Set(ledger.processes.map((e) => e.pid));
    expect(marked.filter((p) => !listed.has(p.pid))).toEqual([]);
    expect(marked.map((p) => p.workload.split('/')[1]).sort()).toEqual(['classifier-a', 'classifier-b']);
    expect(ledger.processes.map((e) => [e.deployment, e.role]).sort()).toEqual([
      ['classifier-a', 'active'],
      ['classifier-b', 'active'],
    ]);
    for (const d of ready.deployments as { name: string; endpoint: string }[]) {
      const { status, json } = await infer(d.endpoint);
      expect(status).toBe(200);
      const version = expected.get(d.name) as string;
      expect(json.model_version).toBe(version);
      logitsOf(json).forEach((v, i) => expect(v).toBeCloseTo(EXPECTED_LOGITS[version]![i]!, 5));
    }

    second.child.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
    await waitUntil('the workloads to stop with the harness', async () => (await processesMarkedWith(stateDir)).length === 0, { timeoutMs: 20_000 });
  }, 120_000);
});
