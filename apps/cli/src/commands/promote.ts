import type { Command } from 'commander';
import type { PromoteResult } from '@flotilla/contracts';
import { type ConnectionFlags, HubClient, resolveTarget } from '../client/hub-client.js';
import { type OutputFormat, outputOption, structured, table } from '../client/output.js';
import { CliError, EXIT } from '../exit-codes.js';
import { withConnectionOptions } from './policy.js';

/** One line per deployment the promotion touches, then how to follow it. */
export function formatPromotion(r: PromoteResult): string {
  const head = r.started.length
    ? `Promoting ${r.model} ${r.version} (job ${r.job}) on ${r.spoke} for ${r.started.join(', ')}.`
    : `${r.model} ${r.version} (job ${r.job}) is already promoted on ${r.spoke}.`;
  const rows = r.promotions.map((p) => [p.deployment, p.state, p.previousVersion ?? '-', p.version, p.message]);
  return `${head}\n${rows.length ? table(['DEPLOYMENT', 'STATE', 'PREVIOUS', 'PROMOTED', 'MESSAGE'], rows) : ''}Follow it with: flotilla describe deployment ${r.promotions[0]?.deployment ?? '<name>'}\n`;
}

export function registerPromote(program: Command): void {
  const promote = program
    .command('promote')
    .description('serve a fine-tuned version on the spoke that produced it (promote: manual jobs, or again after a rollback)');
  withConnectionOptions(
    promote
      .command('job')
      .description(
        "promote the version job NAME produced on spoke S and that passed its evaluation gate: every deployment serving the job's output model on S (and only on S) serves it, watched like a rollout step (Ready within progressDeadline, error ratio within maxErrorRatio), and goes back to its previous version if it fails",
      )
      .argument('<name>', 'FineTuneJob name')
      .requiredOption('--spoke <spoke>', 'the spoke whose produced version is promoted')
      .addOption(outputOption()),
  ).action(async (name: string, o: ConnectionFlags & { output: OutputFormat; spoke: string }) => {
    if (!o.spoke) throw new CliError('--spoke is required', EXIT.usage);
    const client = new HubClient(resolveTarget(o));
    const r = await client.request<PromoteResult>('POST', `/api/v1/finetune-jobs/${encodeURIComponent(name)}/promote`, { json: { spoke: o.spoke } });
    process.stdout.write(o.output === 'table' ? formatPromotion(r) : structured(r, o.output));
  });
}
