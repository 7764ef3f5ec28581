import type { Command } from 'commander';
import { POLICY_LIMITS, type PolicyError, checkReferences, parsePolicyDocuments } from '@flotilla/policy';
import { type ConnectionFlags, HubClient, formatProblem, resolveTarget } from '../client/hub-client.js';
import type { ApplyResult } from '../client/hub-types.js';
import { type OutputFormat, outputOption, structured, table } from '../client/output.js';
import { CliError, EXIT } from '../exit-codes.js';
import { type PolicyFile, readPolicyFiles } from './policy-files.js';


export const collect = (value: string, previous: string[]) => [...previous, value];

const problemLine = (e: PolicyError) => formatProblem({ file: e.file, line: e.line, column: e.column, field: e.path, message: e.message });

/** Schema and reference problems of the files, each pinned to file:line:column. */
function problemsOf(files: PolicyFile[]) {
  const parsed = parsePolicyDocuments(files);
  const references = checkReferences(parsed.objects, [], parsed.sourceMap);
  return { parsed, problems: [...parsed.errors, ...references.slice(0, POLICY_LIMITS.errors)], problemCount: parsed.errorCount + references.length };
}

/** Lists the first POLICY_LIMITS.errors problems on stderr, one a line, and fails with the total count (exit 3). */
export function invalid(problems: PolicyError[], files: number, total = problems.length): CliError {
  const shown = problems.slice(0, POLICY_LIMITS.errors);
  process.stderr.write(shown.map((p) => `${problemLine(p)}\n`).join(''));
  const inFiles = new Set(shown.map((p) => p.file)).size;
  const more = total > shown.length ? ` (the first ${shown.length} listed)` : '';
  return new CliError(`${total} problem${total === 1 ? '' : 's'} in ${inFiles}${more ? '+' : ''} of ${files} file${files === 1 ? '' : 's'}${more}`, EXIT.invalid);
}

const SIGN: Record<ApplyResult['objects'][number]['action'], string> = { created: '+', updated: '~', deleted: '-', unchanged: '=' };

/** Objects with their actions, then what each spoke gains, changes and loses. */
export function renderResult(r: ApplyResult, verb: 'would' | 'did'): string {
  const out: string[] = [];
  out.push(verb === 'would' ? 'Objects (dry run, nothing changed):' : 'Objects:');
  out.push(...table(['', 'OBJECT', 'ACTION'], r.objects.map((o) => [SIGN[o.action], `${o.kind}/${o.name}`, o.action])).trimEnd().split('\n').map((l) => `  ${l}`));
  // Older hubs answered with every spoke and no summary.
  const total = r.spokeSummary?.spokes ?? r.spokes.length;
  if (total === 0) {
    out.push(verb === 'would' ? 'No spoke would change.' : 'No spoke changed.');
  } else {
    // Listed in full below unless the hub paged them: then the counts say what the page does not.
    const counts = r.reportId && r.spokeSummary ? ` (workloads: ${r.spokeSummary.added} added, ${r.spokeSummary.changed} changed, ${r.spokeSummary.removed} removed; the first ${r.spokes.length} spokes below)` : '';
    out.push(`${total} spoke${total === 1 ? '' : 's'} ${verb === 'would' ? 'would change' : 'changed'}${counts}:`);
    for (const s of r.spokes) {
      out.push(`  ${s.spoke}`);
      for (const a of s.added) out.push(`    + ${a}`);
      for (const c of s.changed) out.push(`    ~ ${c}`);
      for (const d of s.removed) out.push(`    - ${d}`);
    }
    if (r.reportId && total > r.spokes.length) {
      out.push(`  … and ${total - r.spokes.length} more: GET /api/v1/apply-reports/${r.reportId} (kept for 24 hours)`);
    }
  }
  return out.join('\n') + '\n';
}

interface SendFlags extends ConnectionFlags {
  filename: string[];
  prune?: boolean;
  source?: string;
  force?: boolean;
  output: OutputFormat;
}

/** Checks locally (so schema errors need no hub), then posts the files to the hub, which checks references against its registry. */
async function send(flags: SendFlags, dryRun: boolean): Promise<ApplyResult> {
  if (flags.prune && !flags.source) throw new CliError('--prune needs --source NAME: prune deletes only the objects of that source that are not in the files', EXIT.usage);
  const client = new HubClient(resolveTarget(flags));
  const files = await readPolicyFiles(flags.filename);
  const { parsed } = problemsOf(files);
  // References are left to the hub: models may be registered there rather than in these files.
  if (parsed.errorCount) throw invalid(parsed.errors, files.length, parsed.errorCount);
  return client.request<ApplyResult>('POST', '/api/v1/apply', {
    query: { dryRun: dryRun ? 'true' : undefined, prune: flags.prune ? 'true' : undefined, source: flags.source, force: flags.force ? 'true' : undefined },
    json: { files },
  });
}

const connection = (cmd: Command) =>
  cmd
    .option('--url <url>', 'hub API URL (default: $FLOTILLA_URL)')
    .option('--token <token>', 'API token (default: $FLOTILLA_TOKEN)')
    .option('--ca <file>', 'CA certificate the https:// hub must chain to, e.g. the hub\'s $FLOTILLA_HOME/tls/ca.pem (default: $FLOTILLA_CA)');

export function registerPolicy(program: Command): void {
  program
    .command('validate')
    .description('check policy files offline: schema and references between them; every problem as file:line:column field: message')
    .option('-f, --filename <path>', 'policy file or directory (searched recursively for *.yaml, *.yml, *.json); repeatable', collect, [])
    .option('--no-references', 'skip the reference check (when models are registered on the hub rather than in these files)')
    .action(async (o: { filename: string[]; references: boolean }) => {
      const files = await readPolicyFiles(o.filename);
      const { parsed, problems, problemCount } = problemsOf(files);
      if (o.references && problemCount) throw invalid(problems, files.length, problemCount);
      if (parsed.errorCount) throw invalid(parsed.errors, files.length, parsed.errorCount);
      const kinds = new Map<string, number>();
      for (const obj of parsed.objects) kinds.set(obj.kind, (kinds.get(obj.kind) ?? 0) + 1);
      const summary = [...kinds].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${n} ${k}`).join(', ');
      process.stdout.write(`valid: ${files.length} file${files.length === 1 ? '' : 's'}, ${parsed.objects.length} object${parsed.objects.length === 1 ? '' : 's'}${summary ? ` (${summary})` : ''}\n`);
    });

  connection(
    program
      .command('diff')
      .description('preview an apply against the hub: per-object actions and what each spoke would gain, lose or change; touches nothing')
      .option('-f, --filename <path>', 'policy file or directory; repeatable', collect, [])
      .option('--prune', 'also show what pruning objects of --source absent from the files would delete')
      .option('--source <name>', 'source the objects are recorded under (needed with --prune)')
      .addOption(outputOption()),
  ).action(async (o: SendFlags) => {
    const r = await send(o, true);
    process.stdout.write(o.output === 'table' ? renderResult(r, 'would') : structured(r, o.output));
  });

  connection(
    program
      .command('apply')
      .description('apply policy files to the hub, all or nothing')
      .option('-f, --filename <path>', 'policy file or directory; repeatable', collect, [])
      .option('--prune', 'delete objects of --source that are not in the files')
      .option('--source <name>', 'source recorded on the objects (default: api:<token name>); needed with --prune')
      .option('--dry-run', 'show what would change and change nothing (as flotilla diff)')
      .option('--force', 'admin only: change or prune objects a git source owns (audited; its next commit writes them again)')
      .addOption(outputOption()),
  ).action(async (o: SendFlags & { dryRun?: boolean }) => {
    const r = await send(o, o.dryRun === true);
    process.stdout.write(o.output === 'table' ? renderResult(r, r.dryRun ? 'would' : 'did') : structured(r, o.output));
  });
}

export { connection as withConnectionOptions };
