import type { Command } from 'commander';
import { formatSelector, selectorFromSpec } from '@flotilla/policy';
import { type ConnectionFlags, HubClient, formatProblem, resolveTarget } from '../client/hub-client.js';
import type { Condition, DeploymentView, GitSourceView, JobView, PlacementView, PolicyObjectView, SpokeView } from '../client/hub-types.js';
import { type OutputFormat, age, fields, indent, labelsText, outputOption, shortCommit, structured, table } from '../client/output.js';
import { CliError, EXIT } from '../exit-codes.js';
import { withConnectionOptions } from './policy.js';

const dash = (v: string | number | null | undefined) => (v === null || v === undefined || v === '' ? '-' : String(v));

function conditionsBlock(conditions: Condition[], now: number): string {
  if (conditions.length === 0) return 'Conditions:  <none>\n';
  return `Conditions:\n${indent(table(['TYPE', 'STATUS', 'REASON', 'AGE', 'MESSAGE'], conditions.map((c) => [c.type, c.status, c.reason, age(c.lastTransitionTime, now), c.message || '-'])))}`;
}

/** Who wrote an object last, at which commit, and its generation. */
const origin = (o: PolicyObjectView) => `${o.source}${o.commit ? ` @ ${shortCommit(o.commit)}` : ''} (generation ${o.generation}, updated ${age(o.updatedAt)} ago)`;

function describeSpoke(s: SpokeView, now: number): string {
  const cap = s.capacity;
  const out = [
    fields([
      ['Name', s.name],
      ['Labels', labelsText(s.labels)],
      ['Connection', `${s.connection}${s.lastSeenAt ? ` (last seen ${age(s.lastSeenAt, now)} ago)` : ' (never seen)'}`],
      ['Generation', `desired ${s.desiredGeneration}, accepted ${s.acceptedGeneration}, observed ${s.observedGeneration}${s.inSync ? ' (in sync)' : s.acceptedGeneration < s.desiredGeneration ? ' (behind)' : ' (reconciling)'}`],
      ['Capacity', cap ? `${cap.cpuCores} CPU cores, ${cap.memoryGiB} GiB memory, ${cap.gpus.length} GPU${cap.gpus.length === 1 ? '' : 's'}` : 'not reported yet'],
      ['Enrolled', `${age(s.createdAt, now)} ago`],
    ]),
  ];
  if (cap?.gpus.length) out.push(`GPUs:\n${indent(table(['INDEX', 'PRODUCT', 'MEMORY', 'MIG'], cap.gpus.map((g) => [String(g.index), g.product, `${g.memoryGiB} GiB`, g.mig ? 'yes' : 'no'])))}`);
  out.push(conditionsBlock(s.conditions, now));
  const d = s.workloads.deployments;
  out.push(
    d.length
      ? `Deployments:\n${indent(table(['NAME', 'PHASE', 'READY', 'VERSION', 'COMPLIANCE', 'ENDPOINT', 'MESSAGE'], d.map((w) => [w.name, w.phase, `${w.readyReplicas}/${w.desiredReplicas}`, dash(w.servingVersion), w.compliance, dash(w.endpoint), dash(w.message)])))}`
      : 'Deployments:  <none>\n',
  );
  const j = s.workloads.jobs;
  out.push(
    j.length
      ? `Jobs:\n${indent(table(['NAME', 'PHASE', 'PROGRESS', 'PRODUCED', 'MESSAGE'], j.map((w) => [w.name, w.phase, `${Math.round(w.progress * 100)}%`, dash(w.producedVersion), dash(w.message)])))}`
      : 'Jobs:  <none>\n',
  );
  return out.join('\n');
}

/** `Stalled` (with why) when the last render could not render the object, else `Rendered`. */
function renderedText(o: { conditions: { type: string; status: string; reason: string; message: string }[] }): string {
  const stalled = o.conditions.find((c) => c.type === 'Stalled');
  if (!stalled) return 'not rendered yet';
  return stalled.status === 'True' ? `Stalled (${stalled.reason}): ${stalled.message}; its spokes keep what they had` : 'Rendered';
}

function describePlacement(p: PlacementView): string {
  const gpu = p.spec.requirements?.gpu;
  const selected = p.decision.selected ?? [];
  const excluded = p.decision.excluded ?? [];
  const out = [
    fields([
      ['Name', p.name],
      ['Labels', labelsText(p.labels)],
      ['Source', origin(p)],
      ['Selector', formatSelector(selectorFromSpec(p.spec.selector as never)) || '<everything>'],
      ['Requirements', gpu ? `${gpu.count} GPU${gpu.count === 1 ? '' : 's'}${gpu.product ? ` ${gpu.product}` : ''}${gpu.memoryGiB !== undefined ? `, >= ${gpu.memoryGiB} GiB each` : ''}` : '<none>'],
      ['Residency', p.spec.residency?.join(', ') ?? '<any>'],
      ['Max spokes', dash(p.spec.maxSpokes)],
      ['Used by', p.usedBy ? [...p.usedBy.deployments.map((d) => `deployment/${d}`), ...p.usedBy.fineTuneJobs.map((j) => `job/${j}`)].join(', ') || '<nothing>' : '-'],
    ]),
    `Selected (${selected.length} of ${p.decision.spokeCount} spokes):${selected.length ? `\n${selected.map((s) => `  ${s}`).join('\n')}` : '  <none>'}\n`,
  ];
  if (excluded.length) {
    // One row per reason, the spoke named on its first.
    const rows = excluded.flatMap((e) => e.reasons.map((r, i) => [i === 0 ? e.spoke : '', r]));
    out.push(`Left out (${excluded.length}):\n${indent(table(['SPOKE', 'REASON'], rows))}`);
  }
  return out.join('\n');
}

function countsText(counts: Record<string, number>): string {
  return Object.entries(counts)
    .map(([k, n]) => `${n} ${k}`)
    .join(', ');
}

function describeDeployment(d: DeploymentView): string {
  const s = d.spec;
  const spokes = d.compliance.spokes ?? [];
  return [
    fields([
      ['Name', d.name],
      ['Labels', labelsText(d.labels)],
      ['Source', origin(d)],
      ['Condition', renderedText(d)],
      ['Model', `${s.model.name} ${s.model.version}`],
      ['Runtime', s.runtime],
      ['Replicas', `min ${s.replicas.min}, max ${s.replicas.max}${s.replicas.targetConcurrency ? `, target concurrency ${s.replicas.targetConcurrency}` : ''}`],
      ['Resources', s.resources ? [`${s.resources.gpu ?? 0} GPU`, s.resources.cpu ? `cpu ${s.resources.cpu}` : '', s.resources.memory ? `memory ${s.resources.memory}` : ''].filter(Boolean).join(', ') : '-'],
      ['Schedule', s.schedule ? `windows in ${s.schedule.timezone}` : '<always>'],
      ['Remediation', dash(s.remediation)],
      ['Placement', `${d.placement.name}${d.placement.found ? '' : ' (missing!)'}: ${d.placement.selectedCount} spoke${d.placement.selectedCount === 1 ? '' : 's'} selected`],
      ['Compliance', countsText(d.compliance.counts)],
    ]),
    spokes.length
      ? `Spokes:\n${indent(
          table(
            ['SPOKE', 'STATE', 'REASON', 'CONNECTION', 'PHASE', 'READY', 'VERSION', 'MESSAGE'],
            spokes.map((x) => [x.spoke, x.state, x.reason, x.connection, dash(x.phase), x.readyReplicas === null ? '-' : `${x.readyReplicas}/${x.desiredReplicas}`, dash(x.servingVersion) + (x.promotedVersion ? ' (promoted)' : ''), dash(x.message)]),
          ),
        )}`
      : 'Spokes:  <none selected>\n',
    ...(d.promotions?.length
      ? [
          `Promotions (fine-tuned versions served on one spoke):\n${indent(
            table(
              ['SPOKE', 'STATE', 'REASON', 'VERSION', 'PREVIOUS', 'JOB', 'MESSAGE'],
              d.promotions.map((p) => [p.spoke, p.state, p.reason, p.version, dash(p.previousVersion), `${p.job} (gen ${p.jobGeneration})`, dash(p.message)]),
            ),
          )}`,
        ]
      : []),
  ].join('\n');
}

/** `[######----]  60%`: ten cells, each a tenth of the run. */
function progressBar(p: number): string {
  const filled = Math.max(0, Math.min(10, Math.floor(p * 10)));
  return `[${'#'.repeat(filled)}${'-'.repeat(10 - filled)}] ${String(Math.round(p * 100)).padStart(3)}%`;
}

/** yes / no, or the last promotion's state and reason when it did not hold (RolledBack, Withdrawn). */
function promotedText(r: NonNullable<JobView['runs']['spokes']>[number]): string {
  if (r.promoted) return 'yes';
  const last = (r.promotions ?? []).find((p) => p.version === r.producedVersion);
  return last ? `no (${last.state}: ${last.reason})` : r.producedVersion ? 'no' : '-';
}

function describeJob(j: JobView): string {
  const s = j.spec;
  const runs = j.runs.spokes ?? [];
  return [
    fields([
      ['Name', j.name],
      ['Source', origin(j)],
      ['Condition', renderedText(j)],
      ['Base model', `${s.baseModel.name} ${s.baseModel.version}`],
      ['Trainer', s.trainer.builtin ? `builtin ${s.trainer.builtin}` : s.trainer.image ? s.trainer.image : s.trainer.command ? `command ${s.trainer.command.join(' ')}` : dash(undefined)],
      ['Dataset', `${s.dataset.path} (${s.dataset.format}, stays on the spoke)`],
      ['Evaluation', `${s.evaluation.metric} >= ${s.evaluation.threshold}`],
      ['Output', `${s.output.model} (${s.output.artifact}), promote ${dash(s.promote)}`],
      ['Placement', `${j.placement.name}: ${j.placement.selectedCount} spoke${j.placement.selectedCount === 1 ? '' : 's'} selected`],
      ['Runs', countsText(j.runs.counts)],
    ]),
    runs.length
      ? `Spokes:\n${indent(
          table(
            ['SPOKE', 'STATE', 'PROGRESS', 'METRICS', 'PRODUCED', 'PROMOTED', 'MESSAGE'],
            runs.map((r) => [
              r.spoke,
              // The detailed stage while it differs: Running (Training), Running (Evaluating), ...
              r.phase && r.phase !== r.state ? `${r.state} (${r.phase})` : r.state,
              r.progress === null ? '-' : progressBar(r.progress),
              Object.entries(r.metrics).map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toPrecision(4)}`).join(',') || '-',
              dash(r.producedVersion),
              promotedText(r),
              dash(r.message),
            ]),
          ),
        )}`
      : 'Spokes:  <none selected>\n',
  ].join('\n');
}

function describeGitSource(g: GitSourceView, now: number): string {
  const out = [
    fields([
      ['Name', g.name],
      ['URL', g.url],
      ['Branch', g.branch],
      ['Path', g.path],
      ['Interval', `${g.intervalSeconds}s`],
      ['Last commit', g.lastCommit ?? 'none applied yet'],
      ['Last synced', g.lastSyncedAt ? `${age(g.lastSyncedAt, now)} ago` : 'never'],
      ['Objects', String(g.objectCount)],
      ['Status', g.lastError ? 'Failed' : 'OK'],
    ]),
  ];
  if (g.lastError) {
    const e = g.lastError;
    out.push(`Last error (${age(e.at, now)} ago${e.commit ? `, commit ${shortCommit(e.commit)}` : ''}):\n  ${e.message.split('\n')[0]}\n${e.problems.map((p) => `  ${formatProblem(p)}\n`).join('')}`);
  }
  return out.join('\n');
}

const KINDS: Record<string, { route: string; render: (v: never, now: number) => string }> = {
  spoke: { route: '/api/v1/spokes', render: describeSpoke },
  deployment: { route: '/api/v1/deployments', render: describeDeployment },
  placement: { route: '/api/v1/placements', render: describePlacement },
  job: { route: '/api/v1/finetune-jobs', render: describeJob },
  'git-source': { route: '/api/v1/git-sources', render: describeGitSource },
};
const ALIASES: Record<string, string> = { spokes: 'spoke', deployments: 'deployment', deploy: 'deployment', placements: 'placement', jobs: 'job', 'finetune-job': 'job', 'git-sources': 'git-source', gs: 'git-source' };

export function registerDescribe(program: Command): void {
  withConnectionOptions(
    program
      .command('describe')
      .description('one spoke, deployment, placement, job or git-source in detail: conditions, workloads, capacity, decision reasons, compliance')
      .argument('<kind>', 'spoke | deployment | placement | job | git-source')
      .argument('<name>')
      .addOption(outputOption()),
  ).action(async (kindName: string, name: string, o: ConnectionFlags & { output: OutputFormat }) => {
    const kind = KINDS[ALIASES[kindName.toLowerCase()] ?? kindName.toLowerCase()];
    if (!kind) throw new CliError(`cannot describe "${kindName}"; one of: ${Object.keys(KINDS).join(', ')}`, EXIT.usage);
    const client = new HubClient(resolveTarget(o));
    const item = await client.request<never>('GET', `${kind.route}/${encodeURIComponent(name)}`);
    process.stdout.write(o.output === 'table' ? kind.render(item, Date.now()) : structured(item, o.output));
  });
}
