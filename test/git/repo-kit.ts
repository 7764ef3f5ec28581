import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import git from 'isomorphic-git';

/** A git repository in a temp directory, written with isomorphic-git as a policy author would with git. */
export interface TestRepo {
  dir: string;
  url: string;
  /** Writes (string) or deletes (null) files, commits them to main, returns the commit id. */
  commit(changes: Record<string, string | null>, message?: string): Promise<string>;
  remove(): Promise<void>;
}

export async function createRepo(): Promise<TestRepo> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'flotilla-git-'));
  const dir = path.join(root, 'policies-repo');
  await mkdir(dir);
  await git.init({ fs, dir, defaultBranch: 'main' });
  let n = 0;
  return {
    dir,
    url: pathToFileURL(dir).href,
    async commit(changes, message = `change ${++n}`) {
      for (const [file, text] of Object.entries(changes)) {
        const p = path.join(dir, file);
        if (text === null) {
          await rm(p, { force: true });
          await git.remove({ fs, dir, filepath: file });
        } else {
          await mkdir(path.dirname(p), { recursive: true });
          await writeFile(p, text);
          await git.add({ fs, dir, filepath: file });
        }
      }
      return git.commit({ fs, dir, message, author: { name: 'Policy Author', email: 'author@example.com' } });
    },
    remove: () => rm(root, { recursive: true, force: true }),
  };
}

export const hasGitBinary = spawnSync('git', ['--version']).status === 0;

/**
 * Serves repositories under `root` over git's smart HTTP protocol through
 * the real `git http-backend` CGI, so the hub's HTTP mirror is tested
 * against what a git server speaks. Needs the git binary.
 */
export async function startGitHttpServer(root: string): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req: IncomingMessage, res) => {
    const u = new URL(req.url ?? '/', 'http://localhost');
    const cgi = spawn('git', ['http-backend'], {
      env: {
        ...process.env,
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: decodeURIComponent(u.pathname),
        QUERY_STRING: u.search.slice(1),
        REQUEST_METHOD: req.method ?? 'GET',
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        HTTP_CONTENT_ENCODING: String(req.headers['content-encoding'] ?? ''),
      },
    });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let body = false;
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (body) return void res.write(chunk);
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      body = true;
      for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
        const colon = line.indexOf(':');
        const [k, v] = [line.slice(0, colon).trim(), line.slice(colon + 1).trim()];
        if (k.toLowerCase() === 'status') res.statusCode = parseInt(v, 10);
        else res.setHeader(k, v);
      }
      res.write(head.subarray(end + 4));
    });
    cgi.stdout.on('end', () => res.end());
    cgi.on('error', () => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
