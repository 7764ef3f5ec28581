import { measureIdleAgent } from '../bench/agent-footprint.js';
import { startTestHub, type TestHub } from '../support/hub.js';

/**
 * `flotilla agent run` as an appliance runs it, enrolled with a real hub and
 * idle, seen from outside: what only some spokes need is not loaded until
 * they need it (issue 18). `npm run bench:agent` takes the full figures.
 */
describe('a real idle agent (flotilla agent run), measured from outside', () => {
  let t: TestHub;
  beforeAll(async () => {
    t = await startTestHub();
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
  });

  test('loads neither the hub nor the Kubernetes client, the S3 SDK, ONNX Runtime, sharp or the trainers; its RSS stays small', async () => {
    const created = await t.api('POST', '/api/v1/enrollment-tokens', { uses: 1, expiresInSeconds: 600 });
    expect(created.status).toBe(201);
    const f = await measureIdleAgent({ hubUrl: t.hub.apiUrl, token: created.body.token, settleMs: 4_000, cpuWindowMs: 2_000, probe: true, probeSettleMs: 1_000 });

    const packages = Object.keys(f.packages ?? {});
    expect(packages).toEqual(expect.arrayContaining(['mqtt', 'pino', 'zod']));
    for (const heavy of ['@kubernetes/client-node', '@aws-sdk/client-s3', 'onnxruntime-node', 'sharp', 'protobufjs', '@nestjs/core', 'typeorm', 'pg', 'yaml', 'aedes', 'pino-pretty']) {
      expect(packages).not.toContain(heavy);
    }
    const own = (f.ownModules ?? []).map((u) => u.replace(/^.*\/(apps|libs)\//, '$1/'));
    expect(own).toContain('apps/agent/src/agent.js');
    expect(own.filter((m) => /^apps\/(hub|gateway)\/|\/finetune\/|\/kubernetes\/|^libs\/policy\//.test(m) && !m.endsWith('hub/src/version/package-version.js'))).toEqual([]);
    // Measured at 60-70 MiB on an idle 2-core machine; the bound leaves room for a loaded CI runner.
    expect(f.rssMiB).toBeLessThan(100);
    expect(f.cpuPercent).toBeLessThan(20);
  }, 120_000);
});
