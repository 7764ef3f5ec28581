import type { Command } from 'commander';
import { type ConnectionFlags, HubClient, resolveTarget } from '../client/hub-client.js';
import { type OutputFormat, outputOption, structured } from '../client/output.js';
import { withConnectionOptions } from './policy.js';

/** The hub signing key as GET /api/v1/signing-key shows it. */
interface SigningKeyView {
  publicKey: string;
  fingerprint: string;
  rotations: number;
  lastRotatedAt: string | null;
}

type Flags = ConnectionFlags & { output: OutputFormat };

const ROUTE = '/api/v1/signing-key';

function print(k: SigningKeyView, o: Flags, headline: string): void {
  if (o.output !== 'table') {
    process.stdout.write(structured(k, o.output));
    return;
  }
  process.stdout.write(
    `${headline}\nFingerprint: ${k.fingerprint}\nRotations:   ${k.rotations}${k.lastRotatedAt ? ` (last ${k.lastRotatedAt})` : ''}\n`,
  );
}

export function registerSigningKey(program: Command): void {
  const key = program.command('signing-key').description('the key that signs every desired state: show it, rotate it (admin)');

  withConnectionOptions(key.command('show').description('the signing key in use (fingerprint) and how often it was rotated').addOption(outputOption())).action(async (o: Flags) => {
    print(await new HubClient(resolveTarget(o)).request<SigningKeyView>('GET', ROUTE), o, 'Hub signing key (Ed25519).');
  });

  withConnectionOptions(
    key
      .command('rotate')
      .description('rotate the signing key: agents follow (the new key is announced under the old one) without enrolling again, then refuse the old key')
      .addOption(outputOption()),
  ).action(async (o: Flags) => {
    const k = await new HubClient(resolveTarget(o)).request<SigningKeyView>('POST', `${ROUTE}/rotate`);
    print(k, o, 'Signing key rotated: every spoke gets its desired state again, signed by the new key.');
  });
}
