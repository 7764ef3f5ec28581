import path from 'node:path';
import type { ApiAttempt, HubClient } from './hub-client.js';
import type { SeededRandom } from './rng.js';

/**
 * What the driver does to the fleet through the admin API, as a user would:
 * register a model and its versions, apply placements and deployments, swap
 * versions back and forth, move spokes between placements by changing their
 * labels, and revoke one spoke. Each step is retried until the hub gives a
 * definite answer (it is killed under the driver's feet), and every change
 * the hub confirmed is remembered with the audit event it must have left,
 * and folded into the intent: what each spoke should end up running.
 */

export const MODEL = 'chaos-classifier';
/** Two deployments, one per placement; a spoke's `ring` label says which one it runs. */
export const DEPLOYMENTS = { a: 'classifier-a', b: 'classifier-b' } as const;
export type Ring = keyof typeof DEPLOYMENTS;

const FIXTURE_FILES = {
  v1: { file: 'linear-classifier-1.0.0.onnx', digest: 'sha256:9a3065dbe5e11b744789cb652460f85cfdb705fa5f4e45a9776f06cdf7ec2ab9' },
  v2: { file: 'linear-classifier-2.0.0.onnx', digest: 'sha256:beeb8c914d32bc8b7fa045b721b66b7ae84629aefe79c714d0f87f6358f72b96' },
} as const;

export type StepKind = 'register' | 'swap' | 'relabel' | 'revoke';

export interface ExpectedAudit {
  action: string;
  target: string;
}

export interface StepRecord {
  index: number;
  kind: StepKind | 'setup';
  description: string;
  startedAt: number;
  endedAt: number;
  /** committed: the hub confirmed it; rejected: a definite refusal; unknown: no definite answer before the step's deadline. */
  outcome: 'committed' | 'rejected' | 'unknown';
  /** Request ids that may have committed it (the confirming one, or earlier ones whose answer was lost). */
  committedBy: string[];
  expectedAudit: ExpectedAudit[];
  attempts: Array<Pick<ApiAttempt, 'requestId' | 'startedAt' | 'endedAt' | 'status' | 'error'> & { message?: string }>;
}

export interface Intent {
  versions: Record<string, string>;
  rings: Record<string, Ring>;
  revoked: string[];
  /** Aspects a step left undecided (no definite answer): the intent check skips them. */
  undecided: string[];
}

interface Attempted {
  outcome: StepRecord['outcome'];
  last: ApiAttempt;
  uncertainIds: string[];
  attempts: ApiAttempt[];
}

const messageOf = (body: unknown): string | undefined => {
  const m = (body as { error?: { message?: string } } | null)?.error?.message;
  return typeof m === 'string' ? m.slice(0, 300) : undefined;
};

export class ScenarioDriver {
  readonly steps: StepRecord[] = [];
  readonly intent: Intent;
  /** Version -> fixture file it points to. */
  private readonly registered = new Map<string, keyof typeof FIXTURE_FILES>();
  private nextVersion = 1;
  revokedAt: number | null = null;
  private hubLost = false;

  constructor(
    private readonly api: HubClient,
    private readonly rng: SeededRandom,
    private readonly repoRoot: string,
    readonly spokes: string[],
    /** How long one step keeps retrying before its outcome is unknown. */
    private readonly stepDeadlineMs: number,
  ) {
    const rings: Record<string, Ring> = {};
    spokes.forEach((s, i) => (rings[s] = i % 2 === 0 ? 'a' : 'b'));
    this.intent = { versions: { [DEPLOYMENTS.a]: '1.0.0', [DEPLOYMENTS.b]: '1.0.0' }, rings, revoked: [], undecided: [] };
  }

  ringOf(spoke: string): Ring {
    return this.intent.rings[spoke]!;
  }

  /** What the last committed policy and labels ask `spoke` to run: deployment -> version. */
  intendedDeployments(spoke: string): Record<string, string> {
    const d = DEPLOYMENTS[this.ringOf(spoke)];
    return { [d]: this.intent.versions[d]! };
  }

  private uri(which: keyof typeof FIXTURE_FILES): string {
    return `file://${path.join(this.repoRoot, 'test', 'fixtures', 'models', FIXTURE_FILES[which].file)}`;
  }

  policyYaml(): string {
    const doc = (ring: Ring) => `---
apiVersion: flotilla.dev/v1
kind: Placement
metadata: { name: ring-${ring} }
spec: { selector: { matchLabels: { ring: ${ring} } } }
---
apiVersion: flotilla.dev/v1
kind: ModelDeployment
metadata: { name: ${DEPLOYMENTS[ring]} }
spec:
  model: { name: ${MODEL}, version: "${this.intent.versions[DEPLOYMENTS[ring]]}" }
  placement: ring-${ring}
  runtime: builtin
  rollout: { strategy: AllAtOnce }
`;
    return doc('a') + doc('b');
  }

  /**
   * Sends until a definite answer: 2xx, or 4xx (a 409 or 404 may then mean
   * that a lost attempt committed). No answer or 5xx means "maybe": the hub may
   * have committed before dying, so those request ids stay candidates.
   */
  private async attempt(send: () => Promise<ApiAttempt>): Promise<Attempted> {
    // Once a step got no definite answer in its whole deadline, the hub is not coming back by itself:
    // later steps try briefly, so a dead hub does not multiply the trial's length.
    const deadline = Date.now() + (this.hubLost ? 5_000 : this.stepDeadlineMs);
    const attempts: ApiAttempt[] = [];
    const uncertainIds: string[] = [];
    for (;;) {
      const a = await send();
      attempts.push(a);
      if (a.status !== null && a.status < 500) this.hubLost = false;
      if (a.status !== null && a.status >= 200 && a.status < 300) return { outcome: 'committed', last: a, uncertainIds, attempts };
      if (a.status !== null && a.status >= 400 && a.status < 500) return { outcome: 'rejected', last: a, uncertainIds, attempts };
      if (a.status === null || a.status >= 500) uncertainIds.push(a.requestId);
      if (Date.now() > deadline) {
        this.hubLost = true;
        return { outcome: 'unknown', last: a, uncertainIds, attempts };
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  private record(kind: StepRecord['kind'], description: string, startedAt: number, r: Attempted, committedBy: string[], expectedAudit: ExpectedAudit[], outcome = r.outcome): StepRecord {
    const step: StepRecord = {
      index: this.steps.length,
      kind,
      description,
      startedAt,
      endedAt: Date.now(),
      outcome,
      committedBy: outcome === 'committed' ? committedBy : [],
      expectedAudit: outcome === 'committed' ? expectedAudit : [],
      attempts: r.attempts.map((a) => ({ requestId: a.requestId, startedAt: a.startedAt, endedAt: a.endedAt, status: a.status, ...(a.error ? { error: a.error } : {}), ...(messageOf(a.body) ? { message: messageOf(a.body) } : {}) })),
    };
    this.steps.push(step);
    return step;
  }

  /* ---------------------------------------------------------------- setup */

  /** The model, its first two versions, both placements and deployments; then an enrolment token. Returns the token. */
  async setup(): Promise<string> {
    await this.createModel();
    await this.registerVersion('1.0.0', 'v1');
    await this.registerVersion('2.0.0', 'v2');
    const applied = await this.apply('setup', 'apply placements ring-a, ring-b and deployments at 1.0.0');
    if (applied.outcome !== 'committed') throw new Error(`the first apply did not commit: ${JSON.stringify(applied.attempts.at(-1))}`);
    const started = Date.now();
    const r = await this.attempt(() => this.api.call('POST', '/api/v1/enrollment-tokens', { uses: this.spokes.length, expiresInSeconds: 3600, allowedLabelKeys: ['*'] }));
    const body = r.last.body as { id?: string; token?: string } | null;
    this.record('setup', `create an enrolment token for ${this.spokes.length} spokes`, started, r, [r.last.requestId], [{ action: 'enrollment-token.create', target: `enrollment-token/${body?.id}` }]);
    if (r.outcome !== 'committed' || !body?.token) throw new Error(`cannot create an enrolment token: HTTP ${r.last.status} ${JSON.stringify(r.last.body)}`);
    return body.token;
  }

  /** Enrolment happened through `flotilla agent enroll` (its own request ids): matched by time. */
  recordEnrolment(spoke: string, startedAt: number): void {
    this.steps.push({
      index: this.steps.length,
      kind: 'setup',
      description: `flotilla agent enroll --name ${spoke}`,
      startedAt,
      endedAt: Date.now(),
      outcome: 'committed',
      committedBy: [],
      expectedAudit: [{ action: 'spoke.enroll', target: `spoke/${spoke}` }],
      attempts: [],
    });
  }

  private async createModel(): Promise<void> {
    const started = Date.now();
    const r = await this.attempt(() => this.api.call('POST', '/api/v1/models', { name: MODEL, task: 'image-classification' }));
    const rec = this.record('setup', `register model ${MODEL}`, started, r, this.candidates(r), [{ action: 'model.create', target: `model/${MODEL}` }], this.conflictMeansCommitted(r));
    if (rec.outcome !== 'committed') throw new Error(`cannot register the model: HTTP ${r.last.status} ${JSON.stringify(r.last.body)}`);
  }

  /** A 409 after an attempt whose answer was lost: that attempt committed. */
  private conflictMeansCommitted(r: Attempted): StepRecord['outcome'] {
    if (r.outcome === 'rejected' && r.last.status === 409 && r.uncertainIds.length > 0) return 'committed';
    return r.outcome;
  }

  private candidates(r: Attempted): string[] {
    return r.outcome === 'committed' ? [r.last.requestId, ...r.uncertainIds] : r.uncertainIds;
  }

  private async registerVersion(version: string, which: keyof typeof FIXTURE_FILES, kind: StepRecord['kind'] = 'setup'): Promise<StepRecord> {
    const started = Date.now();
    const body = { version, digest: FIXTURE_FILES[which].digest, uri: this.uri(which), format: 'onnx' };
    const r = await this.attempt(() => this.api.call('POST', `/api/v1/models/${MODEL}/versions`, body));
    const outcome = this.conflictMeansCommitted(r);
    const rec = this.record(kind, `register ${MODEL} ${version} (${FIXTURE_FILES[which].file})`, started, r, this.candidates(r), [{ action: 'model-version.create', target: `model/${MODEL}/versions/${version}` }], outcome);
    if (outcome === 'committed') this.registered.set(version, which);
    else if (outcome === 'unknown') this.intent.undecided.push(`version ${version} registered?`);
    if (kind === 'setup' && outcome !== 'committed') throw new Error(`cannot register ${MODEL} ${version}: HTTP ${r.last.status} ${JSON.stringify(r.last.body)}`);
    return rec;
  }

  private async apply(kind: StepRecord['kind'], description: string): Promise<StepRecord> {
    const started = Date.now();
    const yaml = this.policyYaml();
    const r = await this.attempt(() => this.api.call('POST', '/api/v1/apply', yaml));
    const objects = ((r.last.body as { objects?: { kind: string; name: string; action: string }[] } | null)?.objects ?? []).filter((o) => o.action !== 'unchanged');
    const verb: Record<string, string> = { created: 'create', updated: 'update', deleted: 'delete' };
    const expected = objects.map((o) => ({ action: `policy.${verb[o.action] ?? o.action}`, target: `${o.kind}/${o.name}` }));
    return this.record(kind, description, started, r, [r.last.requestId], expected);
  }

  /* ---------------------------------------------------------------- steps */

  /** Picks and runs the next scripted step. */
  async step(kind: StepKind): Promise<StepRecord> {
    switch (kind) {
      case 'register': {
        const which = this.rng.pick(['v1', 'v2'] as const);
        return this.registerVersion(`3.0.${this.nextVersion++}`, which, 'register');
      }
      case 'swap': {
        const ring = this.rng.pick(['a', 'b'] as const);
        const d = DEPLOYMENTS[ring];
        const before = this.intent.versions[d]!;
        const choices = [...this.registered.keys()].filter((v) => v !== before);
        const to = this.rng.pick(choices);
        this.intent.versions[d] = to;
        const rec = await this.apply('swap', `swap ${d} ${before} -> ${to}`);
        if (rec.outcome === 'rejected') this.intent.versions[d] = before;
        if (rec.outcome === 'unknown') this.intent.undecided.push(`deployment ${d}`);
        return rec;
      }
      case 'relabel': {
        const live = this.spokes.filter((s) => !this.intent.revoked.includes(s));
        const spoke = this.rng.pick(live);
        const from = this.ringOf(spoke);
        const to: Ring = from === 'a' ? 'b' : 'a';
        const started = Date.now();
        const r = await this.attempt(() => this.api.call('PATCH', `/api/v1/spokes/${spoke}`, { labels: { ring: to } }));
        const rec = this.record('relabel', `relabel ${spoke} ring=${from} -> ring=${to}`, started, r, [r.last.requestId], [{ action: 'spoke.labels.patch', target: `spoke/${spoke}` }]);
        if (r.outcome === 'committed') this.intent.rings[spoke] = to;
        if (r.outcome === 'unknown') this.intent.undecided.push(`spoke ${spoke}`);
        return rec;
      }
      case 'revoke':
        throw new Error('use revoke(spoke)');
    }
  }

  /** DELETE /api/v1/spokes/{name}: 204, or 404 after a lost answer, or 502 (revoked in the database, broker unconfirmed) all mean committed. */
  async revoke(spoke: string): Promise<StepRecord> {
    const started = Date.now();
    const r = await this.attempt(() => this.api.call('DELETE', `/api/v1/spokes/${spoke}`));
    let outcome = r.outcome;
    let by = this.candidates(r);
    if (r.outcome === 'rejected' && r.last.status === 404 && r.uncertainIds.length > 0) outcome = 'committed';
    // 502 revocation_incomplete: the row is revoked (and audited) but the broker did not confirm.
    const incomplete = r.attempts.filter((a) => a.status === 502);
    if (outcome !== 'committed' && incomplete.length > 0) {
      outcome = 'committed';
      by = [...incomplete.map((a) => a.requestId), ...r.uncertainIds];
    }
    const rec = this.record('revoke', `revoke spoke ${spoke} (DELETE /api/v1/spokes/${spoke})`, started, r, by, [{ action: 'spoke.delete', target: `spoke/${spoke}` }], outcome);
    if (outcome === 'committed') {
      this.intent.revoked.push(spoke);
      this.revokedAt = rec.endedAt;
    } else {
      this.intent.undecided.push(`revocation of ${spoke}`);
    }
    return rec;
  }
}
