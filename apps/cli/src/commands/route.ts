import type { Command } from 'commander';
import { type RouteResponse, parseLatLon } from '@flotilla/contracts';
import { type ConnectionFlags, HubClient, resolveTarget } from '../client/hub-client.js';
import { type OutputFormat, outputOption, structured, table } from '../client/output.js';
import { CliError, EXIT } from '../exit-codes.js';
import { withConnectionOptions } from './policy.js';

interface RouteFlags extends ConnectionFlags {
  near?: string;
  version?: string;
  region?: string;
  limit: string;
  output: OutputFormat;
}

const num = (n: number | null, digits: number) => (n === null ? '-' : n.toFixed(digits));

/** The route table as people read it: best first, then why the other spokes serving the model were left out. */
export function renderRoute(r: RouteResponse): string {
  const out: string[] = [];
  if (r.items.length === 0) out.push(`no healthy spoke serves ${r.model}${r.version ? `@${r.version}` : ''}`);
  else {
    out.push(
      table(
        ['#', 'SPOKE', 'DISTANCE-KM', 'LOAD', 'P99-MS', 'ERRORS', 'VERSION', 'ENDPOINT'],
        r.items.map((i, n) => [
          String(n + 1),
          i.spoke,
          num(i.distanceKm, 1),
          num(i.load, 2),
          num(i.latencyP99Ms, 1),
          `${(i.errorRatio * 100).toFixed(1)}%`,
          i.servingVersion ?? '-',
          i.endpoint,
        ]),
      ).trimEnd(),
    );
  }
  if (r.excludedCount > 0) {
    out.push(`left out (${r.excludedCount}):`);
    for (const e of r.excluded) out.push(`  ${e.spoke}  ${e.reason}`);
    if (r.excludedCount > r.excluded.length) out.push(`  ... and ${r.excludedCount - r.excluded.length} more`);
  }
  return `${out.join('\n')}\n`;
}

export function registerRoute(program: Command): void {
  withConnectionOptions(
    program
      .command('route')
      .description('the healthy spokes that would serve MODEL, nearest first (then by load and p99 latency), with their endpoints')
      .argument('<model>', 'model name')
      .option('--near <lat,lon>', 'rank by great-circle distance from this point, e.g. 48.85,2.35')
      .option('--version <version>', 'only spokes serving this model version')
      .option('--region <region>', 'only spokes labelled topology.flotilla.dev/region (else region) with this value')
      .option('--limit <n>', 'how many spokes (1-500)', '10')
      .addOption(outputOption()),
  ).action(async (model: string, o: RouteFlags) => {
    const near = o.near === undefined ? null : parseLatLon(o.near);
    if (typeof near === 'string') throw new CliError(`--near: ${near}`, EXIT.usage);
    const client = new HubClient(resolveTarget(o));
    const r = await client.request<RouteResponse>('GET', '/api/v1/route', {
      query: {
        model,
        version: o.version,
        region: o.region,
        limit: o.limit,
        ...(near ? { lat: String(near.lat), lon: String(near.lon) } : {}),
      },
    });
    process.stdout.write(o.output === 'table' ? renderRoute(r) : structured(r, o.output));
  });
}
