import { lookup as dnsLookup } from 'node:dns/promises';
import { realpath } from 'node:fs/promises';
import { BlockList, isIP } from 'node:net';
import path from 'node:path';

/** The rule a refused source broke; named in every refusal so the operator knows which setting to change. */
export type SourceRule = 'artifact-root' | 'artifact-host' | 'artifact-scheme' | 'trainer-registry' | 'dataset-root';

/** The flag (or setting) that widens each rule. */
const RULE_SETTING: Record<SourceRule, string> = {
  'artifact-root': '--artifact-root',
  'artifact-host': '--allow-private-artifact-hosts or --artifact-host-cidr',
  'artifact-scheme': 'the URI scheme (file:, http:, https:, s3:)',
  'trainer-registry': '--trainer-registry',
  'dataset-root': '--dataset-root',
};

/**
 * A source the agent will not read: outside its allowed directories, a
 * private address, an image from a registry it does not trust. Nothing of it
 * was opened, so the message carries no hash, size or content.
 */
export class SourceRefusedError extends Error {
  override readonly name = 'SourceRefusedError';
  /** The condition reason the runtimes report. */
  readonly reason = 'SourceRefused' as const;
  constructor(
    readonly rule: SourceRule,
    readonly source: string,
    detail: string,
  ) {
    super(`source refused (rule ${rule}): ${detail}; nothing was read (allowed by ${RULE_SETTING[rule]})`);
  }
}

export function isSourceRefused(err: unknown): err is SourceRefusedError {
  return err instanceof SourceRefusedError;
}

export interface SourcePolicySettings {
  /** Directories `file:` artifacts may come from (absolute). */
  artifactRoots: readonly string[];
  /** Directories FineTuneJob datasets may come from (absolute). */
  datasetRoots: readonly string[];
  /** Fetch http(s) artifacts from loopback, link-local and private addresses too. */
  allowPrivateArtifactHosts: boolean;
  /** Private ranges http(s) artifacts may come from, as CIDRs (`10.20.0.0/16`, `fd00::/8`). */
  artifactHostCidrs: readonly string[];
  /** Origins always allowed whatever their address (the agent's own hub: `http://127.0.0.1:8080`). */
  trustedOrigins: readonly string[];
  /** Registries (optionally with a path prefix) trainer images may come from: `registry.example.com`, `ghcr.io/acme`. */
  trainerRegistries: readonly string[];
}

export type AddressLookup = (hostname: string) => Promise<{ address: string; family: number }[]>;

const defaultLookup: AddressLookup = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/** Loopback, link-local, private, shared, multicast and reserved ranges: none is a place to fetch models from by default. */
const NON_PUBLIC_V4: [string, number][] = [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
];
const NON_PUBLIC_V6: [string, number][] = [
  ['::', 128],
  ['::1', 128],
  ['64:ff9b::', 96],
  ['100::', 64],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10],
  ['ff00::', 8],
];

function nonPublicRanges(): BlockList {
  const list = new BlockList();
  for (const [a, p] of NON_PUBLIC_V4) list.addSubnet(a, p, 'ipv4');
  for (const [a, p] of NON_PUBLIC_V6) list.addSubnet(a, p, 'ipv6');
  return list;
}

/** Parses `10.0.0.0/8` or `fd00::/8`; throws a RangeError naming the bad entry. */
export function parseCidr(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text.trim());
  const version = m ? isIP(m[1] as string) : 0;
  const prefix = m ? Number(m[2]) : NaN;
  if (!m || version === 0 || prefix > (version === 4 ? 32 : 128)) throw new RangeError(`"${text}" is not a CIDR range (like 10.20.0.0/16 or fd00::/8)`);
  return { address: m[1] as string, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** Is `child` strictly inside `root` (both absolute, normalised)? */
function isInside(root: string, child: string): boolean {
  const rel = path.relative(root, child);
  return rel !== '' && !rel.startsWith(`..${path.sep}`) && rel !== '..' && !path.isAbsolute(rel);
}

/** `[::1]` as URL.hostname gives it, without the brackets. */
const bareHost = (hostname: string) => (hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname);

/** `registry/path` of an image reference, with Docker's defaults (`nginx` → `docker.io/library/nginx`). */
export function imageRepository(image: string): string | null {
  // name[:tag][@digest]; name = [domain/]path, lower case.
  const m = /^([a-z0-9][a-z0-9._:/-]*?[a-z0-9])(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/.exec(image);
  if (!m) return null;
  const name = m[1] as string;
  if (name.includes('//') || name.split('/').some((c) => c === '' || c === '.' || c === '..')) return null;
  const slash = name.indexOf('/');
  const first = slash === -1 ? '' : name.slice(0, slash);
  if (first && (first.includes('.') || first.includes(':') || first === 'localhost')) return name;
  return slash === -1 ? `docker.io/library/${name}` : `docker.io/${name}`;
}

/**
 * What the agent lets desired state make it read: `file:` artifacts only
 * under its artifact roots (symlinks resolved), http(s) artifacts only from
 * public addresses unless private ones are allowed (the name is resolved and
 * every address checked, at the check and again at connection time through
 * `checkAddress`), trainer images only from allowed registries, datasets only
 * under dataset roots. Every refusal is a SourceRefusedError that names the
 * rule, decided before anything is opened.
 */
export class SourcePolicy {
  private readonly artifactRoots: string[];
  private readonly datasetRoots: string[];
  private readonly nonPublic = nonPublicRanges();
  private readonly allowedRanges = new BlockList();
  private readonly allowPrivate: boolean;
  private readonly trustedOrigins: Set<string>;
  private readonly registries: string[];
  private readonly lookup: AddressLookup;

  constructor(
    readonly settings: SourcePolicySettings,
    opts: { lookup?: AddressLookup } = {},
  ) {
    const problems: string[] = [];
    const roots = (list: readonly string[], flag: string) =>
      list.flatMap((r) => {
        if (!path.isAbsolute(r)) {
          problems.push(`${flag} ${JSON.stringify(r)} must be an absolute path`);
          return [];
        }
        return [path.resolve(r)];
      });
    this.artifactRoots = roots(settings.artifactRoots, '--artifact-root');
    this.datasetRoots = roots(settings.datasetRoots, '--dataset-root');
    for (const c of settings.artifactHostCidrs) {
      try {
        const { address, prefix, family } = parseCidr(c);
        this.allowedRanges.addSubnet(address, prefix, family);
      } catch (err) {
        problems.push(`--artifact-host-cidr: ${(err as Error).message}`);
      }
    }
    this.trustedOrigins = new Set(
      settings.trustedOrigins.flatMap((o) => {
        if (!URL.canParse(o)) {
          problems.push(`trusted origin ${JSON.stringify(o)} is not a URL`);
          return [];
        }
        return [new URL(o).origin];
      }),
    );
    this.registries = settings.trainerRegistries.map((r) => r.trim().replace(/\/+$/, '').toLowerCase());
    for (const r of this.registries) {
      if (!/^[a-z0-9][a-z0-9.-]*(:\d{1,5})?(\/[a-z0-9._-]+)*$/.test(r)) problems.push(`--trainer-registry ${JSON.stringify(r)} is not a registry host with an optional path (like registry.example.com or ghcr.io/acme)`);
    }
    if (problems.length > 0) throw new RangeError(problems.join('; '));
    this.allowPrivate = settings.allowPrivateArtifactHosts;
    this.lookup = opts.lookup ?? defaultLookup;
  }

  /**
   * The real path of a `file:` artifact, which must lie under an artifact
   * root. A path outside every root is refused before the file system is
   * touched (so neither its existence nor its size leaks); one that is inside
   * only by name, through a symlink, is refused once resolved.
   */
  async resolveArtifactFile(filePath: string, uri: string): Promise<string> {
    return this.resolveUnder(filePath, uri, this.artifactRoots, 'artifact-root', 'the agent\'s artifact roots', false);
  }

  /**
   * The real path of a FineTuneJob's `dataset.path` on this machine: absolute,
   * a `--dataset-root` or under one once symlinks are resolved, and existing.
   * Throws SourceRefusedError (rule `dataset-root`) otherwise; the fine-tuning
   * code reads the dataset only through the path this returns.
   */
  async resolveDatasetPath(datasetPath: string): Promise<string> {
    if (!path.isAbsolute(datasetPath)) throw new SourceRefusedError('dataset-root', datasetPath, `dataset path ${JSON.stringify(datasetPath)} is not absolute`);
    return this.resolveUnder(datasetPath, datasetPath, this.datasetRoots, 'dataset-root', 'the agent\'s dataset roots', true);
  }

  /**
   * `dataset.path` as a node directory for a Kubernetes hostPath volume: the
   * agent may not see the node's file system, so the check is on the name:
   * absolute, normalised (no `.`/`..`, no doubled slashes) and under a dataset root.
   */
  datasetHostPath(datasetPath: string): string {
    const normal = path.posix.normalize(datasetPath);
    if (!path.posix.isAbsolute(datasetPath) || normal !== datasetPath.replace(/\/+$/, '') || datasetPath.split('/').includes('..')) {
      throw new SourceRefusedError('dataset-root', datasetPath, `dataset path ${JSON.stringify(datasetPath)} must be an absolute, normalised path`);
    }
    if (!this.datasetRoots.some((r) => isInside(r, normal) || r === normal)) throw new SourceRefusedError('dataset-root', datasetPath, `dataset path ${datasetPath} is outside ${this.describeRoots(this.datasetRoots, 'the agent\'s dataset roots')}`);
    return normal;
  }

  /** Refuses a trainer image whose registry (and path prefix) is not allowed. */
  checkTrainerImage(image: string): void {
    const repo = imageRepository(image);
    if (!repo) throw new SourceRefusedError('trainer-registry', image, `trainer image ${JSON.stringify(image)} is not an image reference`);
    if (this.registries.some((r) => repo === r || repo.startsWith(`${r}/`))) return;
    const allowed = this.registries.length === 0 ? 'no trainer registry is allowed on this agent' : `allowed: ${this.registries.join(', ')}`;
    throw new SourceRefusedError('trainer-registry', image, `trainer image ${image} (${repo}) is not from an allowed registry (${allowed})`);
  }

  /**
   * Checks an http(s) artifact URL (each redirect hop too): resolves the
   * host and refuses when any address is loopback, link-local or private,
   * unless allowed. The agent's trusted origins (its hub) always pass.
   */
  async checkArtifactUrl(uri: string): Promise<void> {
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      throw new SourceRefusedError('artifact-scheme', uri, `${uri} is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new SourceRefusedError('artifact-scheme', uri, `${url.protocol} is not an http(s) URL`);
    if (this.trustedOrigins.has(url.origin)) return;
    const host = bareHost(url.hostname);
    // A name that does not resolve now is left to the connection, whose own lookup is checked again (guardedFetch).
    const addresses = isIP(host) ? [host] : (await this.lookup(host).catch(() => [])).map((a) => a.address);
    for (const a of addresses) this.checkAddress(a, url.host, uri);
  }

  /** Whether a connection to `origin` skips the address check (the hub itself). */
  isTrustedOrigin(origin: string): boolean {
    return this.trustedOrigins.has(origin);
  }

  /** Refuses one resolved address of an artifact host (also called at connection time). */
  checkAddress(address: string, host: string, uri: string): void {
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (!this.nonPublic.check(address, family) || this.allowPrivate || this.allowedRanges.check(address, family)) return;
    throw new SourceRefusedError('artifact-host', uri, `${uri}: ${host} resolves to ${address}, a loopback, link-local or private address`);
  }

  private async resolveUnder(p: string, source: string, roots: string[], rule: SourceRule, what: string, rootItself: boolean): Promise<string> {
    const lexical = path.resolve(p);
    const inside = (r: string, q: string) => isInside(r, q) || (rootItself && r === q);
    if (!roots.some((r) => inside(r, lexical))) throw new SourceRefusedError(rule, source, `${lexical} is outside ${this.describeRoots(roots, what)}`);
    let real: string;
    try {
      real = await realpath(lexical);
    } catch (err) {
      // Inside an allowed directory: saying that it is missing reveals nothing beyond it.
      throw Object.assign(new Error(`cannot resolve ${lexical}: ${(err as Error).message}`), { code: (err as NodeJS.ErrnoException).code });
    }
    const realRoots = await this.realRootsOf(roots);
    if (!realRoots.some((r) => inside(r, real))) throw new SourceRefusedError(rule, source, `${lexical} leads outside ${this.describeRoots(roots, what)} through a symbolic link`);
    return real;
  }

  /** Resolved at each check, so a root created (or moved) after the start is seen as it is. */
  private realRootsOf(roots: string[]): Promise<string[]> {
    return Promise.all(roots.map((r) => realpath(r).catch(() => r)));
  }

  private describeRoots(roots: string[], what: string): string {
    return roots.length === 0 ? `${what} (none is configured)` : `${what} (${roots.join(', ')})`;
  }
}
