import { Command, CommanderError } from 'commander';
import { FLOTILLA_VERSION } from '../../hub/src/version/package-version.js';
import { COMMAND_MODULES, registerCommands } from './command-modules.js';
import { CliError, EXIT } from './exit-codes.js';

const program = new Command()
  .name('flotilla')
  .description('Flotilla: fleet manager for AI at the edge')
  .version(FLOTILLA_VERSION)
  .exitOverride()
  .showHelpAfterError();

// Only the module of the command being run is loaded (`flotilla agent run` must not load the hub,
// its database drivers and the policy compiler); help, completion and unknown words load them all.
const word = process.argv.slice(2).find((a) => !a.startsWith('-'));
await registerCommands(program, COMMAND_MODULES.filter((m) => word !== undefined && m.commands.includes(word)));

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
