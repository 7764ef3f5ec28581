import type { Command } from 'commander';
import type { SpokeCommand } from '@flotilla/contracts';
import { type ConnectionFlags, HubClient, resolveTarget } from '../client/hub-client.js';
import { type OutputFormat, fields, outputOption, structured } from '../client/output.js';
import { CliError, EXIT } from '../exit-codes.js';
import { withConnectionOptions } from './policy.js';

type Flags = ConnectionFlags & { output: OutputFormat; target?: string; wait: boolean; timeout: string };

/** `flotilla spoke command NAME TYPE`: a one-shot command to one agent, and (by default) its result. */
export function registerSpoke(program: Command): void {
  const spoke = program.command('spoke').description('act on one spoke');
  withConnectionOptions(
    spoke
      .command('command')
      .description('send the agent a command and wait for its result: resync, diagnostics (state and recent workload logs), restart --target DEPLOYMENT')
      .argument('<spoke>', 'spoke name')
      .argument('<type>', 'resync, diagnostics or restart')
      .option('--target <deployment>', 'the deployment to restart (restart only)')
      .option('--no-wait', 'print the command id and return at once')
      .option('--timeout <seconds>', 'how long to wait for the result', '60')
      .addOption(outputOption()),
  ).action(async (name: string, type: string, o: Flags) => {
    if (!['resync', 'diagnostics', 'restart'].includes(type)) throw new CliError(`unknown command type "${type}": resync, diagnostics or restart`, EXIT.usage);
    const client = new HubClient(resolveTarget(o));
    const base = `/api/v1/spokes/${encodeURIComponent(name)}/commands`;
    const { id } = await client.request<{ id: string }>('POST', base, { json: { type, ...(o.target ? { target: o.target } : {}) } });
    if (!o.wait) {
      process.stdout.write(o.output === 'table' ? `command ${id} sent to ${name}\n` : structured({ id }, o.output));
      return;
    }
    const until = Date.now() + Number(o.timeout) * 1000;
    for (;;) {
      const c = await client.request<SpokeCommand>('GET', `${base}/${id}`);
      if (c.state === 'Succeeded' || c.state === 'Failed') {
        if (o.output !== 'table') process.stdout.write(structured(c, o.output));
        else process.stdout.write(fields([['Command', `${c.type}${c.target ? ` ${c.target}` : ''} (${c.id})`], ['Spoke', c.spoke], ['State', c.state], ['Message', c.message]]) + (c.type === 'diagnostics' && c.result ? `${JSON.stringify(c.result, null, 2)}\n` : ''));
        if (c.state === 'Failed') throw new CliError(`the command failed on ${name}: ${c.message}`, EXIT.failure);
        return;
      }
      if (Date.now() > until) throw new CliError(`no result from ${name} within ${o.timeout} s (command ${id} is ${c.state}); see GET ${base}/${id}`, EXIT.failure);
      await new Promise((r) => setTimeout(r, 500));
    }
  });
}
