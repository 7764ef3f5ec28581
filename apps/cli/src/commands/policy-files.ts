import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { POLICY_LIMITS } from '@flotilla/policy';
import { CliError, EXIT } from '../exit-codes.js';

export interface PolicyFile {
  /** As shown in messages: relative to the working directory when inside it. */
  file: string;
  text: string;
}

const POLICY_FILE = /\.(ya?ml|json)$/i;

const shown = (abs: string) => {
  const rel = path.relative(process.cwd(), abs);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel.split(path.sep).join('/') : abs;
};

async function walk(dir: string, out: string[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    // Dot entries (.git, .github) are tools' business, as the hub's git sync also skips them.
    if (e.name.startsWith('.')) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await walk(p, out);
    else if (e.isFile() && POLICY_FILE.test(e.name)) out.push(p);
  }
}

/**
 * The policy files named by `-f`: files as given, directories searched
 * recursively for *.yaml, *.yml and *.json. Sorted and de-duplicated so
 * the same tree always gives the same order.
 */
export async function readPolicyFiles(paths: readonly string[]): Promise<PolicyFile[]> {
  if (paths.length === 0) throw new CliError('give the policy files or directories with -f PATH', EXIT.usage);
  const found: string[] = [];
  for (const p of paths) {
    const abs = path.resolve(p);
    const st = await stat(abs).catch(() => null);
    if (!st) throw new CliError(`${p}: no such file or directory`, EXIT.usage);
    if (st.isDirectory()) {
      const before = found.length;
      await walk(abs, found);
      if (found.length === before) throw new CliError(`${p}: no policy files (*.yaml, *.yml, *.json) in it`, EXIT.invalid);
    } else {
      found.push(abs);
    }
  }
  const unique = [...new Set(found)].sort();
  if (unique.length > POLICY_LIMITS.documents) throw new CliError(`${unique.length} policy files; at most ${POLICY_LIMITS.documents} are read in one go`, EXIT.invalid);
  // Sizes first, so a huge file is refused before it is read into memory.
  let total = 0;
  for (const abs of unique) {
    total += (await stat(abs)).size;
    if (total > POLICY_LIMITS.bytes) throw new CliError(`${shown(abs)}: policy files are over ${POLICY_LIMITS.bytes} bytes together (the limit on one apply, diff, delete or validate)`, EXIT.invalid);
  }
  return Promise.all(unique.map(async (abs) => ({ file: shown(abs), text: await readFile(abs, 'utf8') })));
}
