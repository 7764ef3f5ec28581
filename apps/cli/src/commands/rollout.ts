import type { Command } from 'commander';
import type { RolloutView } from '@flotilla/contracts';
import { type ConnectionFlags, HubClient, resolveTarget } from '../client/hub-client.js';
import { type OutputFormat, age, fields, outputOption, structured, table } from '../client/output.js';
import { withConnectionOptions } from './policy.js';

type Flags = ConnectionFlags & { output: OutputFormat };

const route = (deployment: string) => `/api/v1/rollouts/${encodeURIComponent(deployment)}`;

const TERMINAL = new Set(['Succeeded', 'Failed', 'RolledBack', 'Aborted']);

function gateText(g: RolloutView['spokes'][number]['gates'][number]): string {
  const value = g.value === null ? 'n/a' : String(g.value);
  return `${g.name} ${value}${g.name === 'restarts' ? '' : ` (max ${g.threshold})`}${g.ok ? '' : ' FAIL'}`;
}

/** The progress view: phase and why, then one line per spoke with each gate's value against its threshold. */
export function formatRollout(r: RolloutView, now = Date.now()): string {
  const s = r.settings;
  const head = fields([
    ['Deployment', r.deployment],
    ['Phase', `${r.phase}${r.rollingBack ? ' (rolling back)' : ''}`],
    ['Versions', `${r.fromVersion ?? '-'} -> ${r.toVersion}`],
    ['Wave', `${r.wave} of ${r.waves} (started ${age(r.waveStartedAt, now)} ago, deadline ${r.waveDeadline})`],
    ['Started', `${age(r.startedAt, now)} ago${r.finishedAt ? `, finished ${age(r.finishedAt, now)} ago` : ''}`],
    ...(s
      ? ([
          [
            'Gates',
            `errorRatio <= ${s.gates.maxErrorRatio}, latencyP99Ratio <= ${s.gates.maxLatencyP99Ratio}${s.gates.noRestarts ? ', no restarts' : ''}; minSuccessTime ${s.minSuccessSeconds}s, progressDeadline ${s.progressDeadlineSeconds}s, maxFailures ${s.maxFailures}`,
          ],
        ] as [string, string][])
      : []),
    ['Message', r.message],
  ]);
  const counts = Object.entries(r.counts)
    .filter(([, n]) => n > 0)
    .map(([state, n]) => `${state} ${n}`)
    .join(', ');
  const rows = r.spokes.map((sp) => [sp.spoke, String(sp.wave), sp.state + (sp.failed && sp.state !== 'Failed' ? ' (failed)' : ''), sp.reason, sp.gates.map(gateText).join(', ') || '-', sp.message]);
  return `${head}Spokes: ${counts || 'none'}\n${rows.length ? table(['SPOKE', 'WAVE', 'STATE', 'REASON', 'GATES', 'MESSAGE'], rows) : ''}`;
}

export function registerRollout(program: Command): void {
  const rollout = program.command('rollout').description('progressive rollouts of model deployments: status, pause, resume, abort, undo');

  withConnectionOptions(
    rollout
      .command('status')
      .description("a deployment's rollout: waves, each spoke's state, each gate's measured value against its threshold, and why it stopped")
      .argument('<deployment>', 'ModelDeployment name')
      .option('-w, --watch', 'redraw every 2 s until the rollout finishes')
      .addOption(outputOption()),
  ).action(async (deployment: string, o: Flags & { watch?: boolean }) => {
    const client = new HubClient(resolveTarget(o));
    for (;;) {
      const r = await client.request<RolloutView>('GET', route(deployment));
      if (o.output !== 'table') process.stdout.write(structured(r, o.output));
      else process.stdout.write(`${o.watch && process.stdout.isTTY ? '\x1b[2J\x1b[H' : ''}${formatRollout(r)}${o.watch ? '\n' : ''}`);
      if (!o.watch || (TERMINAL.has(r.phase) && !r.rollingBack)) return;
      await new Promise((resolve) => setTimeout(resolve, 2_000));
    }
  });

  for (const [action, what] of [
    ['pause', 'hold the next wave (spokes already in a wave finish it)'],
    ['resume', 'let a paused rollout start its next wave'],
    ['abort', 'stop the rollout and roll the spokes it moved back to the previous version'],
    ['undo', 'roll a succeeded rollout back to the previous version on every spoke it moved'],
  ] as const) {
    withConnectionOptions(rollout.command(action).description(what).argument('<deployment>', 'ModelDeployment name').addOption(outputOption())).action(async (deployment: string, o: Flags) => {
      const client = new HubClient(resolveTarget(o));
      const r = await client.request<RolloutView>('POST', `${route(deployment)}/${action}`);
      if (o.output !== 'table') process.stdout.write(structured(r, o.output));
      else process.stdout.write(`Rollout of ${deployment}: ${r.phase}${r.rollingBack ? ' (rolling back)' : ''}. ${r.message}\n`);
    });
  }
}
