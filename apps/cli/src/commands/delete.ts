import type { Command } from 'commander';
import { type PolicyKind, readPolicyIdentities } from '@flotilla/policy';
import { type ConnectionFlags, HubClient, resolveTarget } from '../client/hub-client.js';
import { type OutputFormat, outputOption, structured } from '../client/output.js';
import { CliError, EXIT } from '../exit-codes.js';
import type { ApplyResult } from '../client/hub-types.js';
import { collect, invalid, renderResult, withConnectionOptions } from './policy.js';
import { readPolicyFiles } from './policy-files.js';
import { WordArgument } from './word-argument.js';

/** What POST /api/v1/delete and DELETE /api/v1/policy-objects/{kind}/{name} answer. */
interface DeleteResult extends ApplyResult {
  objects: { kind: string; name: string; action: 'deleted'; source: string }[];
  notFound: { kind: string; name: string }[];
}

/** The names `get` takes for each kind, and the kinds themselves, any case (as kubectl). */
const KIND_NAMES: Record<PolicyKind, string[]> = {
  Model: ['model', 'models'],
  Placement: ['placement', 'placements', 'pl'],
  ModelDeployment: ['deployment', 'deployments', 'deploy', 'modeldeployment', 'modeldeployments'],
  FineTuneJob: ['job', 'jobs', 'finetunejob', 'finetunejobs', 'finetune-job', 'finetune-jobs'],
};

export const DELETABLE_KINDS = ['model', 'placement', 'deployment', 'job'];

function kindOf(text: string): PolicyKind {
  const t = text.toLowerCase();
  const found = (Object.keys(KIND_NAMES) as PolicyKind[]).find((k) => KIND_NAMES[k].includes(t));
  if (!found) throw new CliError(`unknown kind "${text}"; one of ${DELETABLE_KINDS.join(', ')} (singular or plural)`, EXIT.usage);
  return found;
}

/** `KIND NAME [NAME...]` or `KIND/NAME [KIND/NAME...]`, as kubectl takes them. */
export function targetsOf(args: string[]): { kind: PolicyKind; name: string }[] {
  if (args.length === 0) throw new CliError('name what to delete: -f PATH, KIND NAME or KIND/NAME', EXIT.usage);
  if (args[0]!.includes('/')) {
    return args.map((a) => {
      const [kind, name, extra] = a.split('/');
      if (!kind || !name || extra !== undefined) throw new CliError(`"${a}" is not KIND/NAME`, EXIT.usage);
      return { kind: kindOf(kind), name };
    });
  }
  const [kind, ...names] = args;
  if (names.length === 0) throw new CliError(`name the ${kind} to delete: flotilla delete ${kind} NAME`, EXIT.usage);
  const k = kindOf(kind!);
  for (const n of names) if (n.includes('/')) throw new CliError(`"${n}": give either KIND NAME... or KIND/NAME..., not both`, EXIT.usage);
  return names.map((name) => ({ kind: k, name }));
}

interface DeleteFlags extends ConnectionFlags {
  filename: string[];
  dryRun?: boolean;
  ignoreNotFound?: boolean;
  force?: boolean;
  output: OutputFormat;
}

async function send(args: string[], o: DeleteFlags): Promise<DeleteResult> {
  const query = { dryRun: o.dryRun ? 'true' : undefined, ignoreNotFound: o.ignoreNotFound ? 'true' : undefined, force: o.force ? 'true' : undefined };
  if (o.filename.length > 0) {
    if (args.length > 0) throw new CliError('give -f PATH or KIND NAME, not both', EXIT.usage);
    const client = new HubClient(resolveTarget(o));
    const files = await readPolicyFiles(o.filename);
    // Only kind and name matter: checked here so a broken file fails before the hub is asked.
    const { errors, errorCount } = readPolicyIdentities(files);
    if (errorCount) throw invalid(errors, files.length, errorCount);
    return client.request<DeleteResult>('POST', '/api/v1/delete', { query, json: { files } });
  }
  const targets = targetsOf(args);
  const client = new HubClient(resolveTarget(o));
  if (targets.length === 1) {
    const [t] = targets;
    return client.request<DeleteResult>('DELETE', `/api/v1/policy-objects/${t!.kind}/${encodeURIComponent(t!.name)}`, { query });
  }
  // Several names go in one request, so they are deleted together or not at all.
  const docs = targets.map((t) => ({ apiVersion: 'flotilla.dev/v1', kind: t.kind, metadata: { name: t.name } }));
  return client.request<DeleteResult>('POST', '/api/v1/delete', { query, json: docs });
}

function render(r: DeleteResult): string {
  let out = renderResult(r, r.dryRun ? 'would' : 'did');
  for (const m of r.notFound) out += `${m.kind}/${m.name} not found (ignored)\n`;
  // Deleting (with --force) what a git source wrote lasts only until it syncs a new commit, or is synced by hand.
  for (const o of r.objects) {
    if (o.source.startsWith('git:')) {
      out += `note: ${o.kind}/${o.name} came from git source "${o.source.slice(4)}"; its next commit (or flotilla's sync of it) writes it again unless it is removed from the repository\n`;
    }
  }
  return out;
}

export function registerDelete(program: Command): void {
  withConnectionOptions(
    program
      .command('delete')
      .description('delete policy objects: those named in files (-f), or KIND NAME...; all or nothing; refused while other objects still use them')
      .addArgument(new WordArgument('[objects...]', 'KIND NAME [NAME...] or KIND/NAME...; KIND: model, placement, deployment or job', DELETABLE_KINDS))
      .option('-f, --filename <path>', 'policy file or directory whose objects to delete (only kind and metadata.name are read); repeatable', collect, [])
      .option('--dry-run', 'show what would be deleted and what each spoke would lose; change nothing')
      .option('--ignore-not-found', 'objects that do not exist are not an error')
      .option('--force', 'also delete objects a git source owns (audited; its next commit writes them again)')
      .addOption(outputOption()),
  ).action(async (args: string[], o: DeleteFlags) => {
    const r = await send(args, o);
    process.stdout.write(o.output === 'table' ? render(r) : structured(r, o.output));
  });
}
