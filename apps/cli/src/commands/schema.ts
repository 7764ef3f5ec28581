import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { toJsonSchema } from '@flotilla/policy';
import { CliError, EXIT } from '../exit-codes.js';

export function registerSchema(program: Command): void {
  program
    .command('schema')
    .description('write the JSON Schema of the policy kinds, for editors to validate policy files as they are typed')
    .option('-o, --output <file>', 'write to this file instead of standard output')
    .action(async (o: { output?: string }) => {
      const text = `${JSON.stringify(toJsonSchema(), null, 2)}\n`;
      if (!o.output) {
        process.stdout.write(text);
        return;
      }
      try {
        await writeFile(o.output, text);
      } catch (err) {
        throw new CliError(`cannot write ${o.output}: ${(err as Error).message}`, EXIT.failure);
      }
      process.stderr.write(`wrote the policy JSON Schema to ${o.output}\n`);
    });
}
