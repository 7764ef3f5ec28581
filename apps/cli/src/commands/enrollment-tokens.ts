import type { Command } from 'commander';
import { parseDuration, until } from '../client/duration.js';
import { type ConnectionFlags, HubClient, resolveTarget } from '../client/hub-client.js';
import { type OutputFormat, age, labelsText, outputOption, structured, table } from '../client/output.js';
import { CliError, EXIT } from '../exit-codes.js';
import { withConnectionOptions } from './policy.js';

/** An enrolment token as GET /api/v1/enrollment-tokens lists it (never its secret). */
interface EnrollmentTokenView {
  id: string;
  tokenPrefix: string;
  labels: Record<string, string>;
  allowedLabelKeys?: string[];
  usesTotal: number;
  usesLeft: number;
  expiresAt: string;
  createdBy: string;
  createdAt: string;
}

type Flags = ConnectionFlags & { output: OutputFormat };

const ROUTE = '/api/v1/enrollment-tokens';

/** `k=v,k2=v2` into labels; the hub checks keys and values. */
export function parseLabels(text: string, flag: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of text.split(',').filter((p) => p.trim() !== '')) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new CliError(`${flag}: "${pair}" is not key=value`, EXIT.invalid);
    labels[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return labels;
}

export function registerEnrollmentTokens(program: Command): void {
  const tokens = program
    .command('enrollment-tokens')
    .description('one-time or N-use, expiring tokens that enrol agents: create (printing the enrol command), list, revoke (admin)');

  withConnectionOptions(
    tokens
      .command('create')
      .description('create an enrolment token and print it with the `flotilla agent enroll` command that uses it')
      .option('--labels <k=v,...>', 'labels stamped on every spoke enrolled with it')
      .option('--allow-labels <key,...>', 'label keys agents may ask for with `agent enroll --labels` ("*": any outside flotilla.dev/); default none')
      .option('--uses <n>', 'how many spokes may enrol with it', '1')
      .option('--expires <duration>', 'valid for this long, e.g. 1h or 7d (at most 30d)', '1h')
      .option('--hub-url <url>', 'hub URL agents should use, when they reach it by another address than this CLI (default: the --url)')
      .addOption(outputOption()),
  ).action(async (o: Flags & { labels?: string; allowLabels?: string; uses: string; expires: string; hubUrl?: string }) => {
    if (!/^\d+$/.test(o.uses) || Number(o.uses) < 1) throw new CliError(`--uses ${JSON.stringify(o.uses)}: expected a whole number of 1 or more`, EXIT.invalid);
    const body = {
      ...(o.labels !== undefined ? { labels: parseLabels(o.labels, '--labels') } : {}),
      ...(o.allowLabels !== undefined ? { allowedLabelKeys: o.allowLabels.split(',').map((k) => k.trim()).filter(Boolean) } : {}),
      uses: Number(o.uses),
      expiresInSeconds: parseDuration(o.expires, '--expires'),
    };
    const target = resolveTarget(o);
    const t = await new HubClient(target).request<EnrollmentTokenView & { token: string }>('POST', ROUTE, { json: body });
    const enroll = `flotilla agent enroll --hub ${o.hubUrl ?? target.url} --token ${t.token} --name <NAME>`;
    if (o.output !== 'table') {
      process.stdout.write(structured({ ...t, enrollCommand: enroll }, o.output));
      return;
    }
    process.stdout.write(
      `Enrolment token ${t.id} created: ${t.usesTotal} use${t.usesTotal === 1 ? '' : 's'}, expires ${t.expiresAt} (${until(t.expiresAt)}), labels ${labelsText(t.labels)}` +
        `${t.allowedLabelKeys?.length ? `, agents may ask for ${t.allowedLabelKeys.join(',')}` : ''}.\n` +
        `Token: ${t.token}\n` +
        'This secret is shown once and cannot be read back.\n' +
        'On the appliance, replace <NAME> with the spoke’s name (a DNS label) and run:\n' +
        `  ${enroll}\n`,
    );
  });

  withConnectionOptions(tokens.command('list').description('list enrolment tokens, newest first (never secrets)').addOption(outputOption())).action(async (o: Flags) => {
    const items = await new HubClient(resolveTarget(o)).list<EnrollmentTokenView>(ROUTE);
    if (o.output !== 'table') {
      process.stdout.write(structured(items, o.output));
      return;
    }
    if (items.length === 0) {
      process.stdout.write('No enrolment tokens.\n');
      return;
    }
    const now = Date.now();
    process.stdout.write(
      table(
        ['ID', 'PREFIX', 'USES-LEFT', 'EXPIRES', 'LABELS', 'CREATED-BY', 'AGE'],
        items.map((t) => [t.id, t.tokenPrefix, `${t.usesLeft}/${t.usesTotal}`, until(t.expiresAt, now), labelsText(t.labels), t.createdBy, age(t.createdAt, now)]),
      ),
    );
  });

  withConnectionOptions(tokens.command('revoke').description('revoke an enrolment token').argument('<id>', 'token id, as listed')).action(async (id: string, o: ConnectionFlags) => {
    await new HubClient(resolveTarget(o)).request('DELETE', `${ROUTE}/${encodeURIComponent(id)}`);
    process.stdout.write(`Enrolment token ${id} revoked.\n`);
  });
}
