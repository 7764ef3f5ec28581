import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const FIXTURES = join(process.cwd(), 'test', 'fixtures', 'nvidia-smi');

export interface FakeNvidiaSmi {
  /** Fixture printed for `--query-gpu=...`. */
  query: string;
  /** Fixture printed for `-L`; defaults to the query one. */
  list?: string;
  exitCode?: number;
  /** Seconds to sleep before answering (for timeouts). */
  sleepSeconds?: number;
}

/**
 * Writes an executable stand-in for nvidia-smi that prints recorded outputs
 * (test/fixtures/nvidia-smi) for the two commands the agent runs, with the
 * real tool's exit code, and logs its arguments to `<dir>/calls.log`.
 */
export async function writeFakeNvidiaSmi(dir: string, fake: FakeNvidiaSmi): Promise<{ binary: string; callLog: string }> {
  const binary = join(dir, 'nvidia-smi');
  const callLog = join(dir, 'calls.log');
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const script = [
    '#!/bin/sh',
    `echo "$*" >> ${q(callLog)}`,
    fake.sleepSeconds ? `sleep ${fake.sleepSeconds}` : '',
    'case "$1" in',
    `  --query-gpu=*) cat ${q(join(FIXTURES, fake.query))}; exit ${fake.exitCode ?? 0};;`,
    `  -L) cat ${q(join(FIXTURES, fake.list ?? fake.query))}; exit ${fake.exitCode ?? 0};;`,
    '  *) echo "unexpected arguments: $*" >&2; exit 2;;',
    'esac',
    '',
  ].join('\n');
  await writeFile(binary, script);
  await chmod(binary, 0o755);
  return { binary, callLog };
}
