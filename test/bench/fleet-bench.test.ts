import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/**
 * Keeps `npm run bench` working: the built benchmark runs a tiny fleet end to
 * end and its JSON carries every figure the scale issue asks for. No timing
 * is asserted here; figures are only checked to be measured (finite, > 0)
 * and consistent with each other.
 */

const run = promisify(execFile);
const bench = path.resolve('dist/test/bench/fleet.bench.js');

describe('npm run bench (smoke, 40 spokes)', () => {
  let out: string;
  beforeAll(async () => {
    out = await mkdtemp(path.join(os.tmpdir(), 'flotilla-bench-smoke-'));
  });
  afterAll(async () => {
    await rm(out, { recursive: true, force: true });
  });

  test('measures convergence against the floor and writes the JSON and the markdown table', async () => {
    const args = [bench, '--spokes', '40', '--out', out, '--telemetry-seconds', '5', '--idle-seconds', '1', '--real-agent-seconds', '3', '--database-url', process.env.FLOTILLA_TEST_DATABASE_URL!];
    // The hub lists 10 spokes in the apply's answer and counts the rest.
    const env = { ...process.env, FLOTILLA_APPLY_SPOKES_IN_ANSWER: '10' };
    const { stdout } = await run(process.execPath, args, { timeout: 150_000, maxBuffer: 10 * 1024 * 1024, env });
    expect(stdout).toContain('fan-out convergence');
    const r = JSON.parse(await readFile(path.join(out, 'fleet-embedded-40.json'), 'utf8'));
    expect(r).toMatchObject({ spokes: 40, broker: 'embedded' });
    for (const s of [r.convergence, r.floor, r.selector, r.placement]) {
      for (const k of ['p50Ms', 'p99Ms', 'maxMs']) expect(Number.isFinite(s[k]) && s[k] > 0).toBe(true);
      expect(s.p50Ms).toBeLessThanOrEqual(s.p99Ms);
      expect(s.p99Ms).toBeLessThanOrEqual(s.maxMs);
    }
    expect(r.convergence.n).toBe(40);
    expect(r.convergenceDetail).toMatchObject({ applyAnsweredSpokes: 10, applyAffectedSpokes: 40 });
    expect(r.convergenceDetail.applyAnswerBytes).toBeGreaterThan(0);
    expect(r.floor.n).toBe(40);
    expect(r.ratio).toBeCloseTo(r.convergence.p99Ms / r.floor.p99Ms, 6);
    // Every agent verified two envelopes (the first, empty state and the fan-out) and rejected none.
    expect(r.simAgents.envelopes).toMatchObject({ applied: 80, rejected: 0 });
    expect(r.simAgents.floorEchoes).toBe(40);
    expect(r.telemetry.reportsSent).toBe(40);
    expect(r.enrolment.spokes).toBe(40);
    expect(r.enrolment.perSecond).toBeGreaterThan(0);
    // One real `flotilla agent run` was enrolled and measured beside the simulated ones.
    expect(r.realAgent).toMatchObject({ online: true });
    expect(r.realAgent.rssBytes).toBeGreaterThan(0);
    expect(r.machine).toMatchObject({ cpus: os.cpus().length, node: process.version });
    if (process.platform === 'linux') {
      expect(r.hub.peakRssBytes).toBeGreaterThan(0);
      expect(r.hub.cpuSeconds).toBeGreaterThan(0);
    }
    const md = await readFile(path.join(out, 'fleet-embedded-40.md'), 'utf8');
    expect(md).toContain('| **ratio** (convergence p99 / floor p99) |');
  }, 180_000);
});
