/**
 * The process runtime in a process of its own, as the agent runs it, for
 * tests that kill it with SIGKILL (test/process/kill-during-spawn.test.ts):
 * it takes the state directory's lock, reconciles a fixed desired payload
 * through the real artifact cache, logs as JSON lines on stdout (debug level,
 * written synchronously so that nothing logged is lost to a kill), prints
 * `{"harness":"ready",...}` once every deployment is Ready, and keeps
 * supervising until SIGTERM, which closes the runtime (stopping its
 * workloads with --stop-workloads, leaving them running otherwise).
 *
 *   node dist/test/support/process-runtime-harness.js --state-dir D --desired payload.json --builtin-entry E [--drain-ms MS] [--stop-workloads]
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { DesiredPayload } from '@flotilla/contracts';
import { ArtifactCache } from '../../apps/agent/src/artifacts/index.js';
import { ProcessRuntime } from '../../apps/agent/src/runtime/process/index.js';
import { StateDirLock } from '../../apps/agent/src/state/state-dir-lock.js';
import { testSourcePolicy } from './source-policy.js';

const { values } = parseArgs({
  options: {
    'state-dir': { type: 'string' },
    desired: { type: 'string' },
    'builtin-entry': { type: 'string' },
    'stop-workloads': { type: 'boolean', default: false },
    'drain-ms': { type: 'string', default: '30000' },
  },
});
const stateDir = path.resolve(values['state-dir'] ?? '');
if (!values['state-dir'] || !values.desired || !values['builtin-entry']) {
  process.stderr.write('usage: process-runtime-harness --state-dir D --desired payload.json --builtin-entry E [--stop-workloads]\n');
  process.exit(2);
}

const logger = pino({ level: 'debug', base: { harness: process.pid } }, pino.destination({ fd: 1, sync: true }));
const desired = JSON.parse(await readFile(values.desired, 'utf8')) as DesiredPayload;
const lock = await StateDirLock.acquire(stateDir);
const runtime = new ProcessRuntime({
  stateDir,
  spoke: 'harness',
  artifacts: new ArtifactCache({ root: path.join(stateDir, 'cache'), maxBytes: 1 << 30, maxArtifactBytes: 1 << 30, sources: testSourcePolicy() }),
  builtinEntry: values['builtin-entry'],
  logger,
  stopGraceMs: 3000,
  watchIntervalMs: 200,
  restartBackoff: { initialMs: 200, maxMs: 1000 },
  drainMs: Number(values['drain-ms']),
});

const stop = new AbortController();
let announced = false;
let wake: (() => void) | undefined;
runtime.onChange(() => wake?.());

process.once('SIGTERM', () => {
  stop.abort();
  wake?.();
});

while (!stop.signal.aborted) {
  try {
    const report = await runtime.reconcile(desired, AbortSignal.any([stop.signal, AbortSignal.timeout(60_000)]));
    if (!announced && report.deployments.every((d) => d.phase === 'Ready')) {
      announced = true;
      process.stdout.write(`${JSON.stringify({ harness: 'ready', deployments: report.deployments.map((d) => ({ name: d.name, endpoint: d.endpoint })) })}\n`);
    }
  } catch (err) {
    if (!stop.signal.aborted) logger.warn({ err }, 'reconcile failed');
  }
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 500);
    wake = () => {
      clearTimeout(timer);
      resolve();
    };
  });
}
await runtime.close({ stopWorkloads: values['stop-workloads'] });
await lock.release();
logger.info('harness stopped');
