import fs from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import git from 'isomorphic-git';
import { POLICY_LIMITS } from '@flotilla/policy';
import { type AnswerSeen, describeFetchFailure, observedHttp } from './git-fetch-failure.js';

/**
 * The git side of a git source, behind one small port so the syncer's logic
 * does not care where commits come from: resolve the branch head, then read
 * the policy files of a commit.
 */
export interface PolicyRepository {
  /** Brings the branch head here (fetching if remote) and returns its commit id. */
  head(signal: AbortSignal): Promise<string>;
  /** Every policy file under `dir` at `commit`, paths relative to the repository root, sorted. */
  readPolicyFiles(commit: string, dir: string, signal: AbortSignal): Promise<PolicyFile[]>;
}

export interface PolicyFile {
  file: string;
  text: string;
}

/** A problem with the repository itself (not with the policy in it): missing branch, path, unreadable file. */
export class RepositoryError extends Error {
  constructor(
    message: string,
    readonly file?: string,
  ) {
    super(message);
    this.name = 'RepositoryError';
  }
}

/** Bounds on what one commit may hold, so a wrong path or a huge repository cannot exhaust the hub. */
/** Read no more than the policy parser accepts in one go (POLICY_LIMITS in libs/policy). */
export const REPOSITORY_LIMITS = { files: POLICY_LIMITS.documents, fileBytes: POLICY_LIMITS.bytes, totalBytes: POLICY_LIMITS.bytes };

const POLICY_FILE = /\.(ya?ml|json)$/i;

export interface SourceLocation {
  name: string;
  url: string;
  branch: string;
}

/**
 * The repository for a source: http(s) URLs are fetched (shallow, one
 * branch) into a bare mirror under `mirrorsDir/<name>`; file:// URLs are
 * read in place, read-only, because isomorphic-git has no file transport
 * (isomorphic-git#462) and a local repository needs no copy.
 */
export function openRepository(source: SourceLocation, mirrorsDir: string): PolicyRepository {
  const url = new URL(source.url);
  if (url.protocol === 'file:') return new LocalRepository(fileURLToPath(url), source.branch);
  if (url.protocol === 'http:' || url.protocol === 'https:') return new HttpMirror(path.join(mirrorsDir, source.name), source.url, source.branch);
  throw new RepositoryError(`unsupported URL scheme ${url.protocol} (use file://, http:// or https://)`);
}

/** Removes the mirror of a source that is no longer followed. */
export async function removeMirror(mirrorsDir: string, name: string): Promise<void> {
  await rm(path.join(mirrorsDir, name), { recursive: true, force: true });
}

const isDir = async (p: string) => (await stat(p).catch(() => null))?.isDirectory() ?? false;
const shortId = (commit: string) => commit.slice(0, 12);

/** isomorphic-git errors carry a `code`; the ones that mean "no such thing" become plain messages. */
function isNotFound(err: unknown): boolean {
  return (err as { code?: string })?.code === 'NotFoundError';
}

async function readTreeFiles(gitdir: string, commit: string, dir: string, signal: AbortSignal): Promise<PolicyFile[]> {
  const cache = {};
  const root = dir === '.' ? '' : dir;
  let top;
  try {
    top = await git.readTree({ fs, gitdir, oid: commit, ...(root ? { filepath: root } : {}), cache });
  } catch (err) {
    if (isNotFound(err) || (err as { code?: string })?.code === 'ObjectTypeError') {
      throw new RepositoryError(`path "${dir}" is not a directory at commit ${shortId(commit)}`);
    }
    throw err;
  }
  const files: PolicyFile[] = [];
  let total = 0;
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const walk = async (prefix: string, entries: typeof top.tree): Promise<void> => {
    for (const e of entries) {
      signal.throwIfAborted();
      // Dot entries (.github/, .gitlab-ci.yml) belong to tools, not to policy.
      if (e.path.startsWith('.')) continue;
      const file = prefix ? `${prefix}/${e.path}` : e.path;
      if (e.type === 'tree') {
        const sub = await git.readTree({ fs, gitdir, oid: e.oid, cache });
        await walk(file, sub.tree);
        continue;
      }
      // Symlinks (120000) and submodules (commit) are not followed.
      if (e.type !== 'blob' || e.mode === '120000' || !POLICY_FILE.test(e.path)) continue;
      if (files.length >= REPOSITORY_LIMITS.files) throw new RepositoryError(`more than ${REPOSITORY_LIMITS.files} policy files under "${dir}"`);
      const { blob } = await git.readBlob({ fs, gitdir, oid: e.oid, cache });
      if (blob.byteLength > REPOSITORY_LIMITS.fileBytes) throw new RepositoryError(`file is ${blob.byteLength} bytes; at most ${REPOSITORY_LIMITS.fileBytes} are read`, file);
      total += blob.byteLength;
      if (total > REPOSITORY_LIMITS.totalBytes) throw new RepositoryError(`policy files under "${dir}" exceed ${REPOSITORY_LIMITS.totalBytes} bytes`);
      let text: string;
      try {
        text = decoder.decode(blob);
      } catch {
        throw new RepositoryError('file is not UTF-8 text', file);
      }
      files.push({ file, text });
    }
  };
  await walk(root, top.tree);
  return files.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

/** A repository on this machine, read where it is (bare or with a working tree). */
export class LocalRepository implements PolicyRepository {
  private gitdir: string | null = null;

  constructor(
    private readonly dir: string,
    private readonly branch: string,
  ) {}

  private async locate(): Promise<string> {
    if (this.gitdir) return this.gitdir;
    if (await isDir(path.join(this.dir, '.git'))) this.gitdir = path.join(this.dir, '.git');
    else if (await isDir(path.join(this.dir, 'objects'))) this.gitdir = this.dir;
    else throw new RepositoryError(`${this.dir} is not a git repository`);
    return this.gitdir;
  }

  async head(signal: AbortSignal): Promise<string> {
    const gitdir = await this.locate();
    signal.throwIfAborted();
    try {
      return await git.resolveRef({ fs, gitdir, ref: `refs/heads/${this.branch}` });
    } catch (err) {
      if (isNotFound(err)) throw new RepositoryError(`branch "${this.branch}" not found in ${this.dir}`);
      throw err;
    }
  }

  async readPolicyFiles(commit: string, dir: string, signal: AbortSignal): Promise<PolicyFile[]> {
    return readTreeFiles(await this.locate(), commit, dir, signal);
  }
}

/** A shallow, single-branch bare mirror of a remote repository, fetched over smart HTTP. */
export class HttpMirror implements PolicyRepository {
  constructor(
    private readonly gitdir: string,
    private readonly url: string,
    private readonly branch: string,
  ) {}

  /** A mirror made for another URL or branch (a source deleted and created again) starts over. */
  private async prepare(): Promise<void> {
    const marker = path.join(this.gitdir, 'flotilla-source.json');
    const want = JSON.stringify({ url: this.url, branch: this.branch });
    const have = await readFile(marker, 'utf8').catch(() => null);
    if (have === want) return;
    await rm(this.gitdir, { recursive: true, force: true });
    await mkdir(this.gitdir, { recursive: true, mode: 0o700 });
    await git.init({ fs, gitdir: this.gitdir, bare: true, defaultBranch: this.branch });
    await git.addRemote({ fs, gitdir: this.gitdir, remote: 'origin', url: this.url, force: true });
    await writeFile(marker, want, { mode: 0o600 });
  }

  async head(signal: AbortSignal): Promise<string> {
    await this.prepare();
    const seen: { last: AnswerSeen | null } = { last: null };
    try {
      const r = await git.fetch({
        fs,
        http: observedHttp(signal, seen),
        gitdir: this.gitdir,
        remote: 'origin',
        ref: this.branch,
        singleBranch: true,
        depth: 1,
        tags: false,
        cache: {},
      });
      if (!r.fetchHead) throw new RepositoryError(`branch "${this.branch}" not found at ${redactUrl(this.url)}`);
      return r.fetchHead;
    } catch (err) {
      if (signal.aborted) throw err;
      if (isNotFound(err)) throw new RepositoryError(`branch "${this.branch}" not found at ${redactUrl(this.url)}`);
      if (err instanceof RepositoryError) throw err;
      throw new RepositoryError(`cannot fetch ${redactUrl(this.url)}: ${describeFetchFailure(err, seen.last)}`);
    }
  }

  async readPolicyFiles(commit: string, dir: string, signal: AbortSignal): Promise<PolicyFile[]> {
    return readTreeFiles(this.gitdir, commit, dir, signal);
  }
}

/** A URL as it may be shown: credentials in it replaced. */
export function redactUrl(text: string): string {
  try {
    const u = new URL(text);
    if (!u.username && !u.password) return text;
    u.username = u.username ? '***' : '';
    u.password = u.password ? '***' : '';
    return u.toString();
  } catch {
    return text;
  }
}
