import { readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { runLinearProbe } from './linear-probe.js';
import { LinearProbeSpecSchema } from './linear-probe-spec.js';
import { formatTrainerEvent, OUTPUT_FILES } from './trainer-contract.js';

/**
 * Entry point of the linear-probe child process: `node linear-probe-main.js SPEC.json`.
 * Speaks the trainer contract like any command trainer, so the agent
 * supervises it the same way (and a crash or memory blow-up here never
 * takes the agent down).
 */
async function main(): Promise<number> {
  const specFile = process.argv[2];
  if (specFile === undefined) {
    process.stderr.write('usage: linear-probe-main SPEC.json\n');
    return 2;
  }
  let outputDir: string | undefined;
  try {
    const spec = LinearProbeSpecSchema.parse(JSON.parse(await readFile(specFile, 'utf8')));
    outputDir = spec.outputDir;
    await runLinearProbe(spec, (e) => process.stdout.write(formatTrainerEvent(e)));
    return 0;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`linear-probe failed: ${message}\n`);
    if (outputDir !== undefined) {
      await mkdir(outputDir, { recursive: true });
      await writeFile(path.join(outputDir, OUTPUT_FILES.failure), `${message}\n`);
    }
    return 1;
  }
}

process.exitCode = await main();
