import type { DesiredDeployment, DesiredPayload, ModelRef } from '@flotilla/contracts';
import type { PolicyObject } from '@flotilla/policy';
import type { EntityManager } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import type { RenderContext } from '../desired/spoke-version-decisions.js';
import { PromotionOverrides } from './promotion-overrides.js';
import type { PromotionRow, PromotionStore } from './promotion-store.js';

const ref = (version: string): ModelRef => ({ name: 'bridge', version, digest: `sha256:${version.length.toString(16).padStart(64, '0')}`, uri: `file:///m/${version}.onnx`, format: 'onnx' });
const deployment = (version: string): DesiredDeployment => ({ name: 'web', model: ref(version), runtime: 'builtin', resources: { gpu: 0 }, replicas: { min: 1, max: 1 }, remediation: 'enforce' });
const payload = (version: string): DesiredPayload => ({ settings: { telemetryIntervalSeconds: 30 }, deployments: [deployment(version)], fineTuneJobs: [] });
const policy = (version: string) =>
  [{ apiVersion: 'flotilla.dev/v1', kind: 'ModelDeployment', metadata: { name: 'web' }, spec: { model: { name: 'bridge', version } } }] as unknown as PolicyObject[];

function row(p: Partial<PromotionRow>): PromotionRow {
  return {
    deployment: 'web', spoke: 'a', model: 'bridge', version: '1.0.0-ft.a.222222222222', job: 'tune', jobGeneration: 1, baseModel: 'bridge', baseVersion: '1.0.0',
    policyVersion: '1.0.0', previousVersion: '1.0.0', previousModel: ref('1.0.0'), state: 'Progressing', reason: '', message: '', actor: 'x', gates: [],
    targetGeneration: null, stepStartedAt: new Date(), readyAt: null, history: ['1.0.0-ft.a.111111111111', '1.0.0-ft.a.222222222222'], createdAt: new Date(), updatedAt: new Date(),
    ...p,
  };
}

function source(rows: PromotionRow[]): PromotionOverrides {
  const store = { all: async () => rows } as unknown as PromotionStore;
  return new PromotionOverrides(store, {} as AuditService);
}

const ctx = (previous: Map<string, DesiredPayload>, version = '1.0.0'): RenderContext => ({ objects: policy(version), spokes: [], render: { payloads: new Map(), decisions: new Map(), stalled: new Map() }, previous });
const em = {} as EntityManager;

describe('PromotionOverrides.withoutOwnOverrides: what the other sources (rollouts) compare the policy with', () => {
  it('takes the promoted version out of a spoke’s stored payload: a promotion is not a policy change', async () => {
    const out = await source([row({})]).withoutOwnOverrides(em, ctx(new Map([['a', payload('1.0.0-ft.a.222222222222')], ['b', payload('1.0.0')]])));
    expect(out.get('a')?.deployments[0]?.model).toEqual(ref('1.0.0'));
    expect(out.get('b')?.deployments[0]?.model.version).toBe('1.0.0');
  });

  it('also takes out a version a newer promotion replaced, still stored until the next render', async () => {
    const out = await source([row({ state: 'RolledBack' })]).withoutOwnOverrides(em, ctx(new Map([['a', payload('1.0.0-ft.a.111111111111')]])));
    expect(out.get('a')?.deployments[0]?.model).toEqual(ref('1.0.0'));
  });

  it('leaves a version the deployment’s policy itself names', async () => {
    const out = await source([row({})]).withoutOwnOverrides(em, ctx(new Map([['a', payload('1.0.0-ft.a.222222222222')]]), '1.0.0-ft.a.222222222222'));
    expect(out.get('a')?.deployments[0]?.model.version).toBe('1.0.0-ft.a.222222222222');
  });

  it('leaves other spokes and unrelated versions alone', async () => {
    const previous = new Map([['b', payload('1.0.0-ft.a.222222222222')], ['a', payload('2.0.0')]]);
    const out = await source([row({})]).withoutOwnOverrides(em, ctx(previous));
    expect(out.get('b')?.deployments[0]?.model.version).toBe('1.0.0-ft.a.222222222222');
    expect(out.get('a')?.deployments[0]?.model.version).toBe('2.0.0');
  });
});
