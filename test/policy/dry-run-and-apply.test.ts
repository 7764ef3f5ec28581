import { startTestHub, type TestHub } from '../support/hub.js';
import { waitFor } from '../support/wait.js';
import { basePolicy, startFleet, type Fleet } from '../support/fleet-kit.js';

/** Everything an apply could touch, read straight from the database. */
async function databaseState(t: TestHub) {
  const q = (sql: string) => t.hub.dataSource.query(sql);
  return {
    objects: await q(`SELECT kind, name, generation, spec, source, "commit", updated_at FROM policy_objects ORDER BY kind, name`),
    desired: await q(`SELECT s.name, s.desired_generation, d.generation, d.hash, d.issued_at FROM spokes s LEFT JOIN desired_states d ON d.spoke_id = s.id ORDER BY s.name`),
    auditEvents: Number((await q(`SELECT count(*) AS n FROM audit_events`))[0].n),
  };
}

describe('dry run, then the real apply, against three live agents', () => {
  let t: TestHub;
  let fleet: Fleet;

  beforeAll(async () => {
    t = await startTestHub();
    fleet = await startFleet(t, [
      { name: 'eu-1', labels: { region: 'eu' } },
      { name: 'eu-2', labels: { region: 'eu' } },
      { name: 'us-1', labels: { region: 'us' } },
    ]);
    expect((await t.api('POST', '/api/v1/apply', basePolicy({ version: '1.0.0' }))).status).toBe(200);
    await fleet.converged();
  }, 90_000);

  afterAll(async () => {
    await fleet?.stop();
    await t?.stop();
  });

  test('a dry run lists exactly the spokes that would change and leaves the database as it was', async () => {
    const before = await databaseState(t);
    const dry = await t.api('POST', '/api/v1/apply?dryRun=true', basePolicy({ version: '1.1.0' }));
    expect(dry.status).toBe(200);
    expect(dry.body.dryRun).toBe(true);
    expect(dry.body.spokes).toEqual([
      { spoke: 'eu-1', added: [], removed: [], changed: ['deployment/bridge-defects-eu'] },
      { spoke: 'eu-2', added: [], removed: [], changed: ['deployment/bridge-defects-eu'] },
    ]);
    expect(dry.body.objects).toEqual([
      { kind: 'Model', name: 'bridge-defects', action: 'unchanged' },
      { kind: 'ModelDeployment', name: 'bridge-defects-eu', action: 'updated' },
      { kind: 'Placement', name: 'eu-sites', action: 'unchanged' },
      { kind: 'Placement', name: 'us-sites', action: 'unchanged' },
    ]);
    expect(await databaseState(t)).toEqual(before);
    // And nothing went out: every agent still runs 1.0.0 on the eu sites.
    expect(fleet.agents.get('eu-1')!.runtime.deployments()).toEqual(['bridge-defects-eu@1.0.0']);
  });

  test('a dry run with prune shows what the pruned objects take away, and still touches nothing', async () => {
    const before = await databaseState(t);
    const withoutDeployment = basePolicy().split('---').slice(0, 3).join('---');
    const dry = await t.api('POST', `/api/v1/apply?dryRun=true&prune=true&source=${encodeURIComponent('api:bootstrap-admin')}`, withoutDeployment);
    expect(dry.status).toBe(200);
    expect(dry.body.objects.filter((o: { action: string }) => o.action === 'deleted')).toEqual([{ kind: 'ModelDeployment', name: 'bridge-defects-eu', action: 'deleted' }]);
    expect(dry.body.spokes.map((s: { spoke: string; removed: string[] }) => [s.spoke, s.removed])).toEqual([
      ['eu-1', ['deployment/bridge-defects-eu']],
      ['eu-2', ['deployment/bridge-defects-eu']],
    ]);
    expect(await databaseState(t)).toEqual(before);
  });

  test('an invalid dry run is refused with file:line problems and touches nothing', async () => {
    const before = await databaseState(t);
    const bad = basePolicy({ version: '9.9.9' });
    const r = await t.api('POST', '/api/v1/apply?dryRun=true', bad);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('invalid_policy');
    const line = bad.split('\n').findIndex((l) => l.includes('9.9.9')) + 1;
    expect(r.body.error.details.problems).toEqual([
      expect.objectContaining({ file: 'request', line, field: 'spec.model.version', message: expect.stringContaining('has no version "9.9.9"') }),
    ]);
    expect(await databaseState(t)).toEqual(before);
  });

  test('the real apply changes exactly the spokes the dry run named, and their agents receive it', async () => {
    const dry = await t.api('POST', '/api/v1/apply?dryRun=true', basePolicy({ version: '1.1.0' }));
    const gens = Object.fromEntries(((await databaseState(t)).desired as { name: string; desired_generation: number }[]).map((d) => [d.name, d.desired_generation]));
    const usSeen = fleet.agents.get('us-1')!.handle.snapshot().observedGeneration;

    const applied = await t.api('POST', '/api/v1/apply', basePolicy({ version: '1.1.0' }));
    expect(applied.status).toBe(200);
    expect(applied.body.dryRun).toBe(false);
    expect(applied.body.spokes).toEqual(dry.body.spokes);
    expect(applied.body.objects).toEqual(dry.body.objects);

    const after = Object.fromEntries(((await databaseState(t)).desired as { name: string; desired_generation: number }[]).map((d) => [d.name, d.desired_generation]));
    expect(after).toEqual({ 'eu-1': gens['eu-1']! + 1, 'eu-2': gens['eu-2']! + 1, 'us-1': gens['us-1'] });

    for (const n of ['eu-1', 'eu-2']) {
      await waitFor(`${n} runs 1.1.0`, () => fleet.agents.get(n)!.runtime.deployments().join() === 'bridge-defects-eu@1.1.0');
    }
    await fleet.converged();
    expect(fleet.agents.get('us-1')!.handle.snapshot().observedGeneration).toBe(usSeen);
    expect(fleet.agents.get('us-1')!.runtime.deployments()).toEqual([]);

    // Audited: one update, by the caller, with before and after digests.
    const audit = await t.api('GET', '/api/v1/audit-events?target=ModelDeployment%2Fbridge-defects-eu&action=policy.update');
    expect(audit.body.items[0]).toEqual(expect.objectContaining({ actor: 'token:bootstrap-admin', beforeDigest: expect.any(String), afterDigest: expect.any(String) }));
  });
});
