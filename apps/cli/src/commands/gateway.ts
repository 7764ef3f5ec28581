import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import pino from 'pino';
import { LocationSchema } from '@flotilla/contracts';
import { resolveTarget } from '../client/hub-client.js';
import { CliError, EXIT } from '../exit-codes.js';

interface GatewayFlags {
  listen: string;
  url?: string;
  token?: string;
  lat?: string;
  lon?: string;
  ca?: string;
  pollInterval: string;
  maxBodyBytes: string;
  timeout: string;
  attempts: string;
  ejectSeconds: string;
  logLevel: string;
}

function positive(flag: string, value: string, max: number, integer = true): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0 || n > max || (integer && !Number.isInteger(n))) {
    throw new CliError(`${flag} must be a ${integer ? 'whole ' : ''}number from ${integer ? 1 : 'above 0'} to ${max} (got ${JSON.stringify(value)})`, EXIT.usage);
  }
  return n;
}

function listenAddress(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new CliError(`--listen must be HOST:PORT, e.g. 0.0.0.0:8000 or [::]:8000 (got ${JSON.stringify(text)})`, EXIT.usage);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export function registerGateway(program: Command): void {
  program
    .command('gateway')
    .description('stateless KServe v2 HTTP gateway in front of the fleet: each request goes to the nearest healthy spoke serving the model, failing over to the next')
    .option('--listen <host:port>', 'address to serve on', '127.0.0.1:8000')
    .option('--url <url>', 'hub API URL (default: $FLOTILLA_URL)')
    .option('--token <token>', 'API token of a read-only (viewer) role (default: $FLOTILLA_TOKEN)')
    .option('--lat <degrees>', 'callers’ latitude when a request has no x-client-lat/x-client-lon')
    .option('--lon <degrees>', 'callers’ longitude when a request has no x-client-lat/x-client-lon')
    .option('--ca <file>', 'CA certificate (PEM) an https:// hub or spoke must chain to (default: $FLOTILLA_CA)')
    .option('--poll-interval <seconds>', 'how often the route table of each model in use is read from the hub', '2')
    .option('--max-body-bytes <bytes>', 'largest inference request accepted', String(8 * 1024 * 1024))
    .option('--timeout <seconds>', 'longest a request may take, retries included', '60')
    .option('--attempts <n>', 'spokes tried per request at most', '3')
    .option('--eject-seconds <seconds>', 'how long a failing spoke is passed over (doubling while it keeps failing)', '10')
    .option('--log-level <level>', 'log level', process.env.FLOTILLA_LOG_LEVEL || 'info')
    .action(async (o: GatewayFlags) => {
      const target = resolveTarget(o);
      const { host, port } = listenAddress(o.listen);
      if ((o.lat === undefined) !== (o.lon === undefined)) throw new CliError('give --lat and --lon together', EXIT.usage);
      let defaultLocation = null;
      if (o.lat !== undefined) {
        const parsed = LocationSchema.safeParse({ lat: Number(o.lat), lon: Number(o.lon) });
        if (!parsed.success) throw new CliError(`--lat/--lon: ${parsed.error.issues.map((i) => i.message).join('; ')}`, EXIT.usage);
        defaultLocation = parsed.data;
      }
      const caFile = o.ca ?? process.env.FLOTILLA_CA;
      const ca = caFile
        ? await readFile(caFile, 'utf8').catch((err: Error) => {
            throw new CliError(`cannot read the CA certificate ${caFile}: ${err.message}`, EXIT.usage);
          })
        : undefined;
      if (ca !== undefined && !ca.includes('-----BEGIN CERTIFICATE-----')) throw new CliError(`${caFile} holds no PEM certificate`, EXIT.usage);
      const timeoutMs = positive('--timeout', o.timeout, 3600, false) * 1000;
      const { InferenceGateway, GATEWAY_DEFAULTS } = await import('../../../gateway/src/gateway.js');
      const log = pino({ level: o.logLevel, base: { service: 'flotilla-gateway' }, timestamp: pino.stdTimeFunctions.isoTime });
      const gateway = new InferenceGateway(
        {
          host,
          port,
          hubUrl: target.url,
          token: target.token,
          defaultLocation,
          ca,
          pollMs: positive('--poll-interval', o.pollInterval, 3600, false) * 1000,
          maxStaleMs: GATEWAY_DEFAULTS.maxStaleMs,
          maxBodyBytes: positive('--max-body-bytes', o.maxBodyBytes, 1024 ** 3),
          maxResponseBytes: GATEWAY_DEFAULTS.maxResponseBytes,
          attemptTimeoutMs: Math.min(GATEWAY_DEFAULTS.attemptTimeoutMs, timeoutMs),
          requestTimeoutMs: timeoutMs,
          maxAttempts: positive('--attempts', o.attempts, 100),
          ejectMs: positive('--eject-seconds', o.ejectSeconds, 3600, false) * 1000,
        },
        log,
      );
      const url = await gateway.start().catch((err: Error) => {
        throw new CliError(`cannot listen on ${o.listen}: ${err.message}`, EXIT.failure);
      });
      process.stdout.write(`flotilla gateway serving KServe v2 at ${url} (route table from ${target.url})\n`);
      await new Promise<void>((resolve) => {
        const onSignal = () => void gateway.stop().finally(resolve);
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
      });
    });
}
