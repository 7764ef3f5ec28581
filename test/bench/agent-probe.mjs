// Preloaded (`node --import`) into a probe run of a real agent by agent-footprint.ts: counts the
// modules the process loads (ESM and CommonJS, through Node's synchronous module hooks) and, on
// SIGUSR2, writes that count, the packages, Flotilla's own files and process.memoryUsage() to $FLOTILLA_AGENT_PROBE_OUT.
// Only for the probe run: the measured run carries nothing of this.
import { writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const out = process.env.FLOTILLA_AGENT_PROBE_OUT;
const loaded = new Set();
registerHooks({
  load(url, context, nextLoad) {
    loaded.add(url);
    return nextLoad(url, context);
  },
});
if (out) {
  process.on('SIGUSR2', () => {
    const packages = {};
    const own = [];
    let builtins = 0;
    for (const url of loaded) {
      if (url.startsWith('node:')) {
        builtins += 1;
        continue;
      }
      const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
      if (m) packages[m[1]] = (packages[m[1]] ?? 0) + 1;
      else own.push(url);
    }
    writeFileSync(out, JSON.stringify({ modules: loaded.size - builtins, builtins, own, packages, memory: process.memoryUsage() }));
  });
}
