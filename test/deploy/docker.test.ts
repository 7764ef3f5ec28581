import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';

// deploy/docker/*.Dockerfile linted statically: no Docker engine runs on the project's machines,
// so nothing here builds them. The parser follows the Dockerfile reference closely enough for
// these checks: line continuations, comments, one instruction per logical line.

const DIR = path.resolve('deploy/docker');

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let logical = lines[i]!;
    if (/^\s*#/.test(logical) || logical.trim() === '') continue;
    while (/\\\s*$/.test(logical) && i + 1 < lines.length) {
      i++;
      const next = lines[i]!;
      if (/^\s*#/.test(next)) continue;
      logical = logical.replace(/\\\s*$/, ' ') + next;
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(logical);
    if (!m) throw new Error(`line ${start + 1}: not an instruction: ${logical}`);
    out.push({ keyword: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start + 1 });
  }
  return out;
}

const KNOWN = new Set(['FROM', 'RUN', 'CMD', 'LABEL', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL']);

/** The problems of one Dockerfile as text, empty when it passes. */
function lintDockerfile(text: string): string[] {
  const problems: string[] = [];
  const ins = parseDockerfile(text);
  for (const i of ins) if (!KNOWN.has(i.keyword)) problems.push(`line ${i.line}: unknown instruction ${i.keyword}`);
  const froms = ins.filter((i) => i.keyword === 'FROM');
  if (froms.length < 2) problems.push('not multi-stage: fewer than two FROM');
  const stages = new Set(froms.map((f) => /\bAS\s+(\S+)/i.exec(f.args)?.[1]).filter(Boolean));
  for (const f of froms) {
    const image = f.args.split(/\s+/)[0]!;
    if (!/^node:24[.\w-]*-slim$/.test(image)) problems.push(`line ${f.line}: base image ${image} is not Node 24 slim`);
  }
  const finalStart = ins.lastIndexOf(froms.at(-1)!);
  const final = ins.slice(finalStart);
  const users = final.filter((i) => i.keyword === 'USER');
  const user = users.at(-1)?.args;
  if (!user) problems.push('the final stage sets no USER (it would run as root)');
  else if (/^(root|0)(:|$)/.test(user)) problems.push(`the final stage runs as ${user}`);
  const health = final.filter((i) => i.keyword === 'HEALTHCHECK');
  if (health.length !== 1 || !/\bCMD\b/.test(health[0]!.args)) problems.push('the final stage has no HEALTHCHECK CMD');
  for (const i of ins) {
    if (i.keyword === 'RUN' && /\b(curl|wget)\b[^|;&]*\|\s*(ba|z|da)?sh\b/.test(i.args)) problems.push(`line ${i.line}: pipes a download into a shell`);
    if (i.keyword === 'ADD' && /https?:\/\//.test(i.args)) problems.push(`line ${i.line}: ADD of a URL`);
    if ((i.keyword === 'COPY' || i.keyword === 'ADD') && /--from=(\S+)/.test(i.args)) {
      const from = /--from=(\S+)/.exec(i.args)![1]!;
      if (!stages.has(from)) problems.push(`line ${i.line}: COPY --from=${from} names no stage`);
    }
    if (i.keyword === 'ENTRYPOINT' || i.keyword === 'CMD') {
      try {
        const argv = JSON.parse(i.args) as unknown;
        if (!Array.isArray(argv) || !argv.every((a) => typeof a === 'string')) throw new Error();
      } catch {
        problems.push(`line ${i.line}: ${i.keyword} is not in exec (JSON array) form, so signals would not reach the process`);
      }
    }
  }
  return problems;
}

describe('deploy/docker', () => {
  test('a Dockerfile for the hub and one for the agent', async () => {
    expect((await readdir(DIR)).filter((f) => f.endsWith('Dockerfile')).sort()).toEqual(['agent.Dockerfile', 'hub.Dockerfile']);
  });

  test.each(['hub.Dockerfile', 'agent.Dockerfile'])('%s: multi-stage on Node 24 slim, non-root, a HEALTHCHECK, exec-form entry, no curl|sh', async (file) => {
    expect(lintDockerfile(await readFile(path.join(DIR, file), 'utf8'))).toEqual([]);
  });

  test.each(['hub.Dockerfile', 'agent.Dockerfile'])('%s installs the packed npm package without development or optional dependencies', async (file) => {
    const run = parseDockerfile(await readFile(path.join(DIR, file), 'utf8')).filter((i) => i.keyword === 'RUN').map((i) => i.args);
    expect(run.some((r) => r.includes('npm pack'))).toBe(true);
    // Not -g: npm ignores --omit for a global install from a tarball (npm/cli#8284).
    expect(run.some((r) => /npm install --prefix \/opt\/flotilla --omit=dev --omit=optional .*flotilla-\*\.tgz/.test(r))).toBe(true);
    expect(run.some((r) => r.includes('ln -s /opt/flotilla/node_modules/.bin/flotilla /usr/local/bin/flotilla'))).toBe(true);
  });

  test('the lint catches what it looks for', () => {
    const bad = [
      'FROM node:20 AS build',
      'RUN curl -fsSL https://example.com/install.sh | sh',
      'FROM node:24-bookworm-slim',
      'COPY --from=builder /x /x',
      'USER root',
      'CMD flotilla hub',
    ].join('\n');
    expect(lintDockerfile(bad)).toEqual([
      'line 1: base image node:20 is not Node 24 slim',
      'the final stage runs as root',
      'the final stage has no HEALTHCHECK CMD',
      'line 2: pipes a download into a shell',
      'line 4: COPY --from=builder names no stage',
      'line 6: CMD is not in exec (JSON array) form, so signals would not reach the process',
    ]);
  });
});
