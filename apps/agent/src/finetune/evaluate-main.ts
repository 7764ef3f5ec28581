import { readFile, writeFile } from 'node:fs/promises';
import { EvaluationSpecSchema, evaluateProducedModel } from './agent-evaluation.js';

/**
 * Entry point of the agent's evaluation child process:
 * `node evaluate-main.js SPEC.json RESULT.json`. Exit 0 with the result
 * written, else 1 with the reason on stderr.
 */
async function main(): Promise<number> {
  const [specFile, resultFile] = process.argv.slice(2);
  if (specFile === undefined || resultFile === undefined) {
    process.stderr.write('usage: evaluate-main SPEC.json RESULT.json\n');
    return 2;
  }
  try {
    const spec = EvaluationSpecSchema.parse(JSON.parse(await readFile(specFile, 'utf8')));
    await writeFile(resultFile, JSON.stringify(await evaluateProducedModel(spec)));
    return 0;
  } catch (err) {
    process.stderr.write(`evaluation failed: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

process.exitCode = await main();
