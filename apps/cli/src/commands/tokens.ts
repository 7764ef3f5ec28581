import { type Command, Option } from 'commander';
import { parseDuration, until } from '../client/duration.js';
import { type ConnectionFlags, HubClient, resolveTarget } from '../client/hub-client.js';
import { type OutputFormat, age, outputOption, structured, table } from '../client/output.js';
import { withConnectionOptions } from './policy.js';

/** An API token as GET /api/v1/api-tokens lists it (never its secret). */
interface ApiTokenView {
  id: string;
  name: string;
  role: 'viewer' | 'operator' | 'admin';
  tokenPrefix: string;
  createdBy: string;
  createdAt: string;
  lastUsedAt: string | null;
  expiresAt: string | null;
}

type Flags = ConnectionFlags & { output: OutputFormat };

const ROUTE = '/api/v1/api-tokens';

export function registerTokens(program: Command): void {
  const tokens = program.command('tokens').description('API tokens for people and CI: create (the secret is shown once), list, rotate, revoke (admin)');

  withConnectionOptions(
    tokens
      .command('create')
      .description('create an API token and print its secret, once')
      .argument('<name>', 'token name: lower-case letters, digits, "-" and "."')
      .addOption(new Option('--role <role>', 'what the token may do').choices(['viewer', 'operator', 'admin']).makeOptionMandatory())
      .option('--expires <duration>', 'expire after this long, e.g. 30d or 12h (default: never)')
      .addOption(outputOption()),
  ).action(async (name: string, o: Flags & { role: string; expires?: string }) => {
    const expiresInSeconds = o.expires === undefined ? undefined : parseDuration(o.expires, '--expires');
    const client = new HubClient(resolveTarget(o));
    const t = await client.request<ApiTokenView & { token: string }>('POST', ROUTE, { json: { name, role: o.role, expiresInSeconds } });
    if (o.output !== 'table') {
      process.stdout.write(structured(t, o.output));
      return;
    }
    process.stdout.write(
      `API token "${t.name}" created (role ${t.role}, ${t.expiresAt ? `expires ${t.expiresAt}` : 'does not expire'}).\n` +
        `Token: ${t.token}\n` +
        'This secret is shown once and cannot be read back: store it now (e.g. as FLOTILLA_TOKEN).\n',
    );
  });

  withConnectionOptions(tokens.command('list').description('list API tokens (names, roles and prefixes; never secrets)').addOption(outputOption())).action(async (o: Flags) => {
    const client = new HubClient(resolveTarget(o));
    const items = await client.list<ApiTokenView>(ROUTE);
    if (o.output !== 'table') {
      process.stdout.write(structured(items, o.output));
      return;
    }
    if (items.length === 0) {
      process.stdout.write('No API tokens.\n');
      return;
    }
    const now = Date.now();
    process.stdout.write(
      table(
        ['NAME', 'ROLE', 'PREFIX', 'CREATED-BY', 'AGE', 'LAST-USED', 'EXPIRES'],
        items.map((t) => [t.name, t.role, t.tokenPrefix, t.createdBy, age(t.createdAt, now), t.lastUsedAt ? `${age(t.lastUsedAt, now)} ago` : 'never', until(t.expiresAt, now)]),
      ),
    );
  });

  withConnectionOptions(
    tokens
      .command('rotate')
      .description('replace a token\'s secret and print the new one, once (default: the bootstrap admin token); the old secret stops working at once')
      .argument('[name]', 'token name', 'bootstrap-admin')
      .addOption(outputOption()),
  ).action(async (name: string, o: Flags) => {
    const client = new HubClient(resolveTarget(o));
    const t = await client.request<ApiTokenView & { token: string }>('POST', `${ROUTE}/${encodeURIComponent(name)}/rotate`);
    if (o.output !== 'table') {
      process.stdout.write(structured(t, o.output));
      return;
    }
    process.stdout.write(
      `API token "${t.name}" rotated (role ${t.role}); the old secret no longer works.\n` +
        `Token: ${t.token}\n` +
        'This secret is shown once and cannot be read back: store it now (e.g. as FLOTILLA_TOKEN).\n',
    );
  });

  withConnectionOptions(tokens.command('revoke').description('revoke an API token at once').argument('<name>', 'token name')).action(async (name: string, o: ConnectionFlags) => {
    const client = new HubClient(resolveTarget(o));
    await client.request('DELETE', `${ROUTE}/${encodeURIComponent(name)}`);
    process.stdout.write(`API token "${name}" revoked.\n`);
  });
}
