#!/usr/bin/env node
// Entry of the `flotilla` command: the compiled CLI lives in dist/ (built by `npm ci`, shipped by `npm pack`).
// The version check comes first and uses only syntax old Node versions parse, so that
// an older Node says what to do instead of failing deep inside a dependency.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const NEEDED = [24, 9];
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < NEEDED[0] || (major === NEEDED[0] && minor < NEEDED[1])) {
  const pinned = fileURLToPath(new URL('../node_modules/.bin/node', import.meta.url));
  const script = fileURLToPath(import.meta.url);
  // A checkout has its lockfile (and, after `npm ci`, the pinned Node 24); an installed package has neither.
  const checkout = existsSync(fileURLToPath(new URL('../package-lock.json', import.meta.url)));
  const how = existsSync(pinned)
    ? `run it through \`npm start\` or \`npx flotilla\` (they use the Node 24 that \`npm ci\` installed), or as \`${pinned} ${script}\``
    : checkout
      ? 'run `npm ci` in the checkout (it installs Node 24 for the project) and use `npx flotilla`, or install Node 24 LTS from https://nodejs.org'
      : `install Node.js 24 LTS (https://nodejs.org, or your distribution's nodejs 24 package) so that \`node\` on the PATH is 24.9 or later, or run it as \`/path/to/node24 ${script}\``;
  process.stderr.write(`flotilla: Node.js ${NEEDED.join('.')} or later is needed and this is ${process.versions.node} (${process.execPath}); ${how}.\n`);
  process.exit(2);
}
// `flotilla agent run` is a small daemon sharing the appliance's memory with the models it serves: it
// runs under Node flags that keep it small (a 1 MiB young generation instead of up to 16, V8's
// heuristics for size, no TurboFan but Maglev), by replacing this process with one started with them
// (same pid, so systemd and the state directory's lock see one process); about 20 MiB less RSS idle
// (docs/operations.md, Sizing). FLOTILLA_AGENT_NODE_FLAGS replaces them ("" for none).
const agentFlags = (process.env.FLOTILLA_AGENT_NODE_FLAGS ?? '--max-semi-space-size=1 --optimize-for-size --max-opt=2').split(/\s+/).filter(Boolean);
if (process.argv[2] === 'agent' && process.argv[3] === 'run' && typeof process.execve === 'function') {
  const given = (f) => process.execArgv.some((a) => a === f || a.startsWith(`${f.split('=')[0]}=`));
  const missing = agentFlags.filter((f) => !given(f));
  if (missing.length > 0) {
    process.execve(process.execPath, [process.execPath, ...process.execArgv, ...missing, fileURLToPath(import.meta.url), ...process.argv.slice(2)], process.env);
  }
}
const main = new URL('../dist/apps/cli/src/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write(`flotilla: the CLI is not built (${fileURLToPath(main)} is missing); run \`npm run build\` (\`npm ci\` does it too).\n`);
  process.exit(1);
}
// No top-level await: older Node versions must be able to parse this file to print the message above.
import(main.href);
