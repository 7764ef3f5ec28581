import type { Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ConnectionFlags, HubClient, HubError, resolveTarget } from '../client/hub-client.js';
import type { DeploymentView, GitSourceView, JobView, ModelView, PlacementView, PolicyObjectView, SpokeView } from '../client/hub-types.js';
import { type OutputFormat, age, columnWidths, labelsText, outputOption, shortCommit, structured, table, tableLine } from '../client/output.js';
import { CliError, EXIT } from '../exit-codes.js';
import { withConnectionOptions } from './policy.js';
import { WordArgument } from './word-argument.js';

interface GetFlags extends ConnectionFlags {
  selector?: string;
  output: OutputFormat;
  watch?: boolean;
}

/** How often `get -w` asks the hub again. */
const WATCH_INTERVAL_MS = 2_000;

interface Resource<T> {
  /** Names people type: plural first, then singular and short forms. */
  names: string[];
  headers: string[];
  /** Columns that change with the clock alone (`5s ago`): a watch does not print a row again for them. */
  clockColumns?: string[];
  /** Every item, filtered by the label selector where the resource has labels. */
  all(client: HubClient, selector: string | undefined): Promise<T[]>;
  one(client: HubClient, name: string): Promise<T>;
  row(item: T, now: number): string[];
}

const count = (n: number | undefined) => String(n ?? 0);
const seen = (iso: string | null, now: number) => (iso ? `${age(iso, now)} ago` : 'never');
const byName = <T>(route: string) => ({
  all: (c: HubClient, selector: string | undefined) => c.list<T>(route, { selector }),
  one: (c: HubClient, name: string) => c.request<T>('GET', `${route}/${encodeURIComponent(name)}`),
});

const spokes: Resource<SpokeView> = {
  names: ['spokes', 'spoke', 'sp'],
  headers: ['NAME', 'CONNECTION', 'LAST-SEEN', 'GEN', 'READY', 'LABELS'],
  clockColumns: ['LAST-SEEN'],
  ...byName<SpokeView>('/api/v1/spokes'),
  row: (s, now) => [
    s.name,
    s.connection,
    seen(s.lastSeenAt, now),
    `${s.observedGeneration}/${s.desiredGeneration}`,
    s.conditions.find((c) => c.type === 'Ready')?.status ?? '-',
    labelsText(s.labels),
  ],
};

const deployments: Resource<DeploymentView> = {
  names: ['deployments', 'deployment', 'deploy', 'modeldeployments'],
  headers: ['NAME', 'MODEL', 'RUNTIME', 'PLACEMENT', 'SPOKES', 'COMPLIANT', 'NONCOMPLIANT', 'PENDING', 'UNKNOWN', 'SOURCE'],
  ...byName<DeploymentView>('/api/v1/deployments'),
  row: (d) => [
    d.name,
    `${d.spec.model.name}@${d.spec.model.version}`,
    d.spec.runtime,
    d.placement.found ? d.placement.name : `${d.placement.name} (missing)`,
    count(d.placement.selectedCount),
    count(d.compliance.counts.Compliant),
    count(d.compliance.counts.NonCompliant),
    count(d.compliance.counts.Pending),
    count(d.compliance.counts.Unknown),
    d.source,
  ],
};

const jobs: Resource<JobView> = {
  names: ['jobs', 'job', 'finetune-jobs', 'finetunejobs'],
  headers: ['NAME', 'BASE-MODEL', 'PLACEMENT', 'SPOKES', 'SUCCEEDED', 'RUNNING', 'PENDING', 'FAILED', 'REJECTED', 'UNKNOWN', 'SOURCE'],
  ...byName<JobView>('/api/v1/finetune-jobs'),
  row: (j) => [
    j.name,
    `${j.spec.baseModel.name}@${j.spec.baseModel.version}`,
    j.placement.name,
    count(j.placement.selectedCount),
    count(j.runs.counts.Succeeded),
    count(j.runs.counts.Running),
    count(j.runs.counts.Pending),
    count(j.runs.counts.Failed),
    count(j.runs.counts.Rejected),
    count(j.runs.counts.Unknown),
    j.source,
  ],
};

const placements: Resource<PlacementView> = {
  names: ['placements', 'placement', 'pl'],
  headers: ['NAME', 'SELECTED', 'EXCLUDED', 'MAX-SPOKES', 'SOURCE'],
  ...byName<PlacementView>('/api/v1/placements'),
  row: (p) => [p.name, count(p.decision.selectedCount), count(p.decision.excludedCount), p.spec.maxSpokes === undefined ? '-' : String(p.spec.maxSpokes), p.source],
};

const gitSources: Resource<GitSourceView> = {
  names: ['git-sources', 'git-source', 'gitsources', 'gs'],
  headers: ['NAME', 'URL', 'BRANCH', 'PATH', 'INTERVAL', 'COMMIT', 'SYNCED', 'OBJECTS', 'STATUS'],
  clockColumns: ['SYNCED'],
  all: (c, selector) => {
    if (selector) throw new CliError('git sources have no labels to select on', EXIT.usage);
    return c.list<GitSourceView>('/api/v1/git-sources');
  },
  one: (c, name) => c.request<GitSourceView>('GET', `/api/v1/git-sources/${encodeURIComponent(name)}`),
  row: (g, now) => [
    g.name,
    g.url,
    g.branch,
    g.path,
    `${g.intervalSeconds}s`,
    shortCommit(g.lastCommit),
    seen(g.lastSyncedAt, now),
    String(g.objectCount),
    g.lastError ? `Failed${g.lastError.commit ? ` at ${shortCommit(g.lastError.commit)}` : ''}: ${g.lastError.message.split('\n')[0]}` : 'OK',
  ],
};

/** Model policy objects and registry models (POST /api/v1/models) together: both are models the fleet can run. */
async function allModels(c: HubClient, selector: string | undefined): Promise<ModelView[]> {
  const objects = await c.list<PolicyObjectView>('/api/v1/policy-objects', { kind: 'Model', selector });
  const fromPolicy = objects.map((o) => {
    const spec = o.spec as { task?: string; versions?: { version: string }[] };
    return { name: o.name, task: spec.task ?? null, source: o.source, versions: (spec.versions ?? []).map((v) => v.version) };
  });
  // Registry models have no labels, so a selector leaves them out.
  const registry = selector ? [] : await c.list<{ name: string; task: string | null; source: string }>('/api/v1/models');
  const fromRegistry: ModelView[] = [];
  for (const r of registry) {
    const detail = await c.request<{ versions: { version: string }[] }>('GET', `/api/v1/models/${encodeURIComponent(r.name)}`);
    fromRegistry.push({ name: r.name, task: r.task, source: `registry (${r.source})`, versions: detail.versions.map((v) => v.version).sort() });
  }
  return [...fromPolicy, ...fromRegistry].sort((a, b) => a.name.localeCompare(b.name) || a.source.localeCompare(b.source));
}

const models: Resource<ModelView> = {
  names: ['models', 'model'],
  headers: ['NAME', 'VERSIONS', 'TASK', 'SOURCE'],
  all: allModels,
  one: async (c, name) => {
    const found = (await allModels(c, undefined)).filter((m) => m.name === name);
    if (found.length === 0) throw new CliError(`model "${name}" not found`, EXIT.refused);
    // A model both in policy and in the registry: one view with every version.
    return { ...found[0]!, versions: [...new Set(found.flatMap((m) => m.versions))].sort(), source: found.map((m) => m.source).join(', ') };
  },
  row: (m) => [m.name, m.versions.join(',') || '-', m.task ?? '-', m.source],
};

// Methods are checked bivariantly, so each Resource<T> fits Resource<unknown>.
const RESOURCES: Resource<unknown>[] = [spokes, deployments, models, jobs, placements, gitSources] as Resource<unknown>[];

function findResource(name: string): Resource<unknown> {
  const r = RESOURCES.find((x) => x.names.includes(name.toLowerCase()));
  if (!r) throw new CliError(`unknown resource "${name}"; one of: ${RESOURCES.map((x) => x.names[0]).join(', ')}`, EXIT.usage);
  return r;
}

/** What a watch compares: the row without the columns that move with the clock. */
function signature(resource: Resource<unknown>, row: string[]): string {
  const skip = new Set((resource.clockColumns ?? []).map((c) => resource.headers.indexOf(c)));
  return JSON.stringify(row.filter((_, i) => !skip.has(i)));
}

const nameOf = (item: unknown) => String((item as { name?: unknown }).name);

/**
 * `get -w`: after the first list, asks again every 2 s and prints each row
 * that changed, appeared or disappeared (its last state), as `kubectl get -w`
 * does. Ctrl-C ends it with exit 0. A refusal (401, 403, a bad selector) ends
 * it with that error; an unreachable or failing hub is reported and retried.
 */
async function watch(resource: Resource<unknown>, name: string | undefined, o: GetFlags): Promise<void> {
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const client = new HubClient(resolveTarget(o), 60_000, stop.signal);
  const fetchItems = async (): Promise<unknown[]> => {
    try {
      return name ? [await resource.one(client, name)] : await resource.all(client, o.selector);
    } catch (err) {
      // The one object watched was deleted: it has no row any more.
      if (name && err instanceof HubError && err.status === 404) return [];
      throw err;
    }
  };
  const print = (item: unknown, row: string[], widths: number[]) =>
    process.stdout.write(o.output === 'table' ? `${tableLine(row, widths)}\n` : o.output === 'json' ? structured(item, 'json') : `---\n${structured(item, 'yaml')}`);
  try {
    let now = Date.now();
    const first = await fetchItems();
    const rows = first.map((i) => resource.row(i, now));
    const widths = columnWidths(resource.headers, rows);
    if (o.output === 'table') process.stdout.write(`${tableLine(resource.headers, widths)}\n`);
    let last = new Map(first.map((item, i) => [nameOf(item), { item, row: rows[i]!, sig: signature(resource, rows[i]!) }]));
    for (const { item, row } of last.values()) print(item, row, widths);
    let failing = false;
    while (!stop.signal.aborted) {
      await sleep(WATCH_INTERVAL_MS, undefined, { signal: stop.signal }).catch(() => undefined);
      if (stop.signal.aborted) break;
      let items: unknown[];
      try {
        items = await fetchItems();
      } catch (err) {
        if (stop.signal.aborted) break;
        if (err instanceof CliError && err.exitCode !== EXIT.failure) throw err;
        if (!failing) process.stderr.write(`flotilla: ${(err as Error).message}; retrying every ${WATCH_INTERVAL_MS / 1000}s\n`);
        failing = true;
        continue;
      }
      failing = false;
      now = Date.now();
      const next = new Map<string, { item: unknown; row: string[]; sig: string }>();
      for (const item of items) {
        const row = resource.row(item, now);
        const entry = { item, row, sig: signature(resource, row) };
        next.set(nameOf(item), entry);
        if (last.get(nameOf(item))?.sig !== entry.sig) print(item, row, widths);
      }
      for (const [k, gone] of last) if (!next.has(k)) print(gone.item, gone.row, widths);
      last = next;
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export function registerGet(program: Command): void {
  withConnectionOptions(
    program
      .command('get')
      .description('list spokes, deployments, models, jobs, placements or git-sources (or one by name)')
      .addArgument(new WordArgument('<resource>', 'spokes | deployments | models | jobs | placements | git-sources', RESOURCES.map((r) => r.names[0]!)))
      .argument('[name]', 'just this one')
      .option('-l, --selector <selector>', 'label selector, e.g. region=eu,gpu.product in (L40S,H100),!quarantined')
      .option('-w, --watch', `after the list, print each row again when it changes (asks every ${WATCH_INTERVAL_MS / 1000} s; Ctrl-C ends)`)
      .addOption(outputOption()),
  ).action(async (resourceName: string, name: string | undefined, o: GetFlags) => {
    const resource = findResource(resourceName);
    if (name && o.selector) throw new CliError('give a name or --selector, not both', EXIT.usage);
    if (o.watch) return watch(resource, name, o);
    const client = new HubClient(resolveTarget(o));
    const items = name ? [await resource.one(client, name)] : await resource.all(client, o.selector);
    if (o.output !== 'table') {
      process.stdout.write(structured(name ? items[0] : items, o.output));
      return;
    }
    if (items.length === 0) {
      process.stdout.write(`No ${resource.names[0]} found.\n`);
      return;
    }
    const now = Date.now();
    process.stdout.write(table(resource.headers, items.map((i) => resource.row(i, now))));
  });
}
