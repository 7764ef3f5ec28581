import { readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The version in Flotilla's package.json, which hub and CLI share. Found by
 * walking up from this file, because it sits one level deeper in dist/ than
 * in the sources.
 */
function readVersion(): string {
  for (let dir = import.meta.dirname; ; dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'flotilla' && pkg.version) return pkg.version;
    } catch {
      /* no package.json here: keep walking up */
    }
    if (path.dirname(dir) === dir) return 'unknown';
  }
}

/** Read once at load: it cannot change while the process runs. */
export const FLOTILLA_VERSION = readVersion();
