import type { Command } from 'commander';
import { FLOTILLA_VERSION } from '../../../hub/src/version/package-version.js';
import { HubClient, resolveUrl } from '../client/hub-client.js';
import { type OutputFormat, outputOption, structured } from '../client/output.js';
import { CliError } from '../exit-codes.js';

/** What GET /api/v1/version answers (public: no token needed). */
interface HubVersion {
  version: string;
  api: string;
  protocol: number;
}

export function registerVersion(program: Command): void {
  program
    .command('version')
    .description('the CLI’s version, and the hub’s when a hub URL is set (--url or FLOTILLA_URL; no token needed)')
    .option('--url <url>', 'hub API URL (default: $FLOTILLA_URL)')
    .addOption(outputOption())
    .action(async (o: { url?: string; output: OutputFormat }) => {
      const client = { version: FLOTILLA_VERSION, node: process.version };
      const url = resolveUrl(o);
      let hub: (HubVersion & { url: string }) | null = null;
      let failure: CliError | null = null;
      if (url) {
        try {
          hub = { ...(await new HubClient({ url, token: '' }, 10_000).request<HubVersion>('GET', '/api/v1/version')), url };
        } catch (err) {
          if (!(err instanceof CliError)) throw err;
          failure = err;
        }
      }
      if (o.output !== 'table') {
        process.stdout.write(structured({ client, hub }, o.output));
      } else {
        process.stdout.write(`Client Version: ${client.version} (Node ${client.node})\n`);
        if (hub) process.stdout.write(`Hub Version:    ${hub.version} (API ${hub.api}, protocol ${hub.protocol}) at ${hub.url}\n`);
        else if (!url) process.stdout.write('Hub Version:    unknown (set FLOTILLA_URL or --url to ask a hub)\n');
      }
      // As kubectl version: the client's version is printed, then the failure to reach the hub is an error.
      if (failure) throw failure;
    });
}
