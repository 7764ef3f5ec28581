import 'reflect-metadata';
import { Command, CommanderError } from 'commander';
import { FLOTILLA_VERSION } from '../../hub/src/version/package-version.js';
import { registerAgent } from './commands/agent.js';
import { registerCompletion } from './commands/completion.js';
import { registerDelete } from './commands/delete.js';
import { registerEnrollmentTokens } from './commands/enrollment-tokens.js';
import { registerTokens } from './commands/tokens.js';
import { registerVersion } from './commands/version.js';
import { registerHub } from './commands/hub.js';
import { registerDescribe } from './commands/describe.js';
import { registerGet } from './commands/get.js';
import { registerPolicy } from './commands/policy.js';
import { registerSchema } from './commands/schema.js';
import { registerRoute } from './commands/route.js';
import { registerGateway } from './commands/gateway.js';
import { registerRollout } from './commands/rollout.js';
import { registerSpoke } from './commands/spoke.js';
import { CliError, EXIT } from './exit-codes.js';
import { registerSigningKey } from './commands/signing-key.js';
import { registerPromote } from './commands/promote.js';

const program = new Command()
  .name('flotilla')
  .description('Flotilla: fleet manager for AI at the edge')
  .version(FLOTILLA_VERSION)
  .exitOverride()
  .showHelpAfterError();

registerHub(program);
registerAgent(program);
registerPolicy(program);
registerGet(program);
registerDescribe(program);
registerSchema(program);
registerDelete(program);
registerTokens(program);
registerEnrollmentTokens(program);
registerVersion(program);
registerRollout(program);
registerPromote(program);
registerSpoke(program);
registerCompletion(program);
registerSigningKey(program);
registerRoute(program);
registerGateway(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else if (err instanceof CliError) {
    process.stderr.write(`flotilla: ${err.message}\n`);
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`flotilla: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = EXIT.failure;
  }
}
