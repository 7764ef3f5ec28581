import { type z } from 'zod';
import { type Document, isAlias, isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseAllDocuments } from 'yaml';
import { API_VERSION, KIND_SCHEMAS, POLICY_KINDS, type PolicyKind, type PolicyObject } from './schemas.js';
import { BoundedErrors, POLICY_LIMITS, checkValueBounds, scanPolicyText } from './input-limits.js';

/**
 * Reading policy files: multi-document YAML (JSON is read the same way, a
 * top-level list being several objects), validated against the kinds, with
 * every problem pinned to file, line, column and field path so a person can go
 * straight to it.
 */

export interface PolicySource {
  file: string;
  text: string;
}

export interface PolicyError {
  file: string;
  /** 1-based; 0 when the object did not come from a file (read from the hub's database, say). */
  line: number;
  /** 1-based; 0 when unknown, as for line. */
  column: number;
  /** Field path such as `spec.replicas.max` or `spec.versions[0].digest`; empty for the whole document. */
  path: string;
  message: string;
  /** `Kind/name` of the object concerned, when known. */
  object?: string;
}

export interface SourceLocation {
  file: string;
  line: number;
  column: number;
}

export type PathSegment = string | number;

interface ObjectOrigin {
  file: string;
  root: Node;
  lines: LineCounter;
  doc: Document;
}

/**
 * Where each parsed object came from, so that later checks (references,
 * placement) can point at the exact field. Keyed by `Kind/name`, which is
 * unique once parsing has reported duplicates.
 */
export class PolicySourceMap {
  constructor(private readonly origins: ReadonlyMap<string, ObjectOrigin>) {}

  /** Location of `path` inside object kind/name: the field itself, or its nearest parent that exists. */
  locate(kind: PolicyKind, name: string, path: readonly PathSegment[]): SourceLocation | undefined {
    const origin = this.origins.get(`${kind}/${name}`);
    if (!origin) return undefined;
    const found = findNode(origin.doc, origin.root, path);
    return { file: origin.file, ...position(origin.lines, found.offset) };
  }
}

export interface ParsedPolicy {
  objects: PolicyObject[];
  /** The first POLICY_LIMITS.errors problems, in file and line order. */
  errors: PolicyError[];
  /** How many problems there are in all (more than `errors` holds when over the limit). */
  errorCount: number;
  sourceMap: PolicySourceMap;
}

/** Format a field path the way people write it: `spec.versions[0].digest`, `matchLabels["gpu.product"]`. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

function position(lines: LineCounter, offset: number): { line: number; column: number } {
  const { line, col } = lines.linePos(offset);
  // linePos reports line 0 before the first newline has been registered.
  return { line: Math.max(line, 1), column: Math.max(col, 1) };
}

/**
 * Walk the YAML tree along `path`. Returns the offset of the deepest node
 * reached, whether the whole path exists, and the key node of the last map
 * entry walked (used for unknown-field errors, which are about the key).
 */
function findNode(
  doc: Document,
  root: Node,
  path: readonly PathSegment[],
): { offset: number; complete: boolean; node: Node } {
  let node: Node = root;
  let offset = root.range?.[0] ?? 0;
  for (const seg of path) {
    const target: unknown = isAlias(node) ? node.resolve(doc) : node;
    let next: Node | undefined;
    let at: number | undefined;
    if (isMap(target)) {
      const pair = target.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (pair && isScalar(pair.key)) {
        at = pair.key.range?.[0];
        // An empty value (`spec:` alone) has no node of its own: point at the key.
        next = (pair.value as Node | null) ?? pair.key;
        if (pair.value && (pair.value as Node).range) at = (pair.value as Node).range?.[0];
      }
    } else if (isSeq(target) && typeof seg === 'number') {
      const item = target.items[seg] as Node | undefined;
      if (item) {
        next = item;
        at = item.range?.[0];
      }
    }
    if (!next) return { offset, complete: false, node };
    node = next;
    offset = at ?? offset;
  }
  return { offset, complete: true, node };
}

/** Offset of the key of entry `key` in the map at `path`, for "unknown field" errors. */
function keyOffset(doc: Document, root: Node, path: readonly PathSegment[], key: string): number | undefined {
  const { node, complete } = findNode(doc, root, path);
  const target: unknown = isAlias(node) ? node.resolve(doc) : node;
  if (!complete || !isMap(target)) return undefined;
  const pair = target.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === key);
  return pair && isScalar(pair.key) ? pair.key.range?.[0] : undefined;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  return String(v);
}

/** zod's generic wording made specific: say what was found, not only what was wanted. */
function issueMessage(issue: z.core.$ZodIssue, present: boolean): string {
  if (!present && issue.code === 'invalid_type') return `required field is missing (expected ${issue.expected})`;
  // Messages written in the schemas are already specific; only zod's defaults start so.
  if (!issue.message.startsWith('Invalid ')) return issue.message;
  if (issue.code === 'invalid_type') return `expected ${issue.expected}, got ${describeValue(issue.input)}`;
  if (issue.code === 'invalid_value') {
    const wanted = issue.values.map((v) => JSON.stringify(v));
    return `must be ${wanted.length === 1 ? wanted[0] : `one of ${wanted.join(', ')}`}, got ${describeValue(issue.input)}`;
  }
  return issue.message;
}

/** Move an offset that yaml reports at the start of a line's indentation onto the first real character. */
function skipIndent(text: string, offset: number): number {
  let i = offset;
  while (i < text.length && (text[i] === ' ' || text[i] === '\t')) i++;
  return i < text.length && text[i] !== '\n' ? i : offset;
}

/**
 * Parse and validate policy files. Every document is checked, so one run
 * reports every problem; objects with errors are left out of `objects`.
 * Duplicate kind/name pairs, across or within files, are errors on the later
 * definition.
 */
export function parsePolicyDocuments(sources: readonly PolicySource[]): ParsedPolicy {
  const objects: PolicyObject[] = [];
  const errors = new BoundedErrors<PolicyError>();
  const origins = new Map<string, ObjectOrigin>();
  const firstSeen = new Map<string, SourceLocation>();
  const done = (): ParsedPolicy => ({ objects, errors: errors.items, errorCount: errors.total, sourceMap: new PolicySourceMap(origins) });

  // Refused before parsing: the parser's time and memory grow with what this bounds.
  const tooBig = scanPolicyText(sources);
  if (tooBig) {
    errors.add({ file: tooBig.file, line: tooBig.line, column: 0, path: '', message: tooBig.message });
    return done();
  }
  let documents = 0;

  for (const source of sources) {
    const lines = new LineCounter();
    let parsed: ReturnType<typeof parseAllDocuments>;
    try {
      parsed = parseAllDocuments(source.text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
    } catch (err) {
      // The scan above should have refused anything the parser cannot hold; a stack overflow is still an input problem.
      if (!(err instanceof RangeError)) throw err;
      errors.add({ file: source.file, line: 0, column: 0, path: '', message: `cannot be parsed: ${err.message} (nesting is limited to ${POLICY_LIMITS.depth} levels)` });
      continue;
    }
    // Each file's problems are sorted by line before joining the others; only the first ones are kept.
    const fileErrors = new BoundedErrors<PolicyError>();
    const at = (offset: number) => ({ file: source.file, ...position(lines, offset) });
    const flush = () => {
      fileErrors.items.sort((a, b) => a.line - b.line || a.column - b.column);
      for (const e of fileErrors.items) errors.add(e);
      errors.total += fileErrors.total - fileErrors.items.length;
    };

    if ('empty' in parsed) {
      // An empty stream: nothing declared, nothing wrong. Errors in it still count.
      for (const e of parsed.errors) fileErrors.add({ ...at(skipIndent(source.text, e.pos[0])), path: '', message: yamlMessage(e.message) });
      flush();
      continue;
    }

    for (const doc of parsed) {
      if (doc.errors.length > 0) {
        // A document YAML cannot read is reported as such, not also as schema
        // noise; one error a line, since yaml's follow-on errors repeat the first.
        const lines = new Set<number>();
        for (const e of doc.errors) {
          const where = at(skipIndent(source.text, e.pos[0]));
          if (lines.has(where.line)) continue;
          lines.add(where.line);
          fileErrors.add({ ...where, path: '', message: yamlMessage(e.message) });
        }
        continue;
      }
      const root = doc.contents;
      if (root === null || (isScalar(root) && root.value === null)) continue;

      let js: unknown;
      try {
        js = doc.toJS({ maxAliasCount: 100 });
      } catch (e) {
        // Alias bombs and the like: yaml refuses to expand them.
        fileErrors.add({ ...at(root.range?.[0] ?? 0), path: '', message: e instanceof Error ? e.message : String(e) });
        continue;
      }
      const bounds = checkValueBounds(js);
      if (bounds) {
        fileErrors.add({ ...at(findNode(doc, root, bounds.path).offset), path: formatPath(bounds.path), message: bounds.message });
        continue;
      }
      // A JSON (or YAML) list at the top holds several objects.
      const roots: Node[] = isSeq(root) ? (root.items as Node[]) : [root];
      const values: unknown[] = isSeq(root) ? (js as unknown[]) : [js];
      documents += values.length;
      if (documents > POLICY_LIMITS.documents) {
        fileErrors.add({ ...at(root.range?.[0] ?? 0), path: '', message: `more than ${POLICY_LIMITS.documents} policy objects in one go` });
        flush();
        return done();
      }

      for (const [i, value] of values.entries()) {
        const node = roots[i] ?? root;
        const nodeAt = (path: readonly PathSegment[]) => findNode(doc, node, path);
        const report = (path: readonly PathSegment[], message: string, object?: string, offset?: number) =>
          fileErrors.add({ ...at(offset ?? nodeAt(path).offset), path: formatPath(path), message, ...(object ? { object } : {}) });

        if (!isRecord(value)) {
          report([], 'expected a policy object with apiVersion, kind, metadata and spec');
          continue;
        }
        if (value.apiVersion !== API_VERSION) {
          report(['apiVersion'], value.apiVersion === undefined ? `required field is missing (expected "${API_VERSION}")` : `must be "${API_VERSION}", got ${JSON.stringify(value.apiVersion)}`);
          continue;
        }
        const kind = value.kind;
        if (typeof kind !== 'string' || !(POLICY_KINDS as readonly string[]).includes(kind)) {
          report(['kind'], kind === undefined ? `required field is missing (expected one of ${POLICY_KINDS.join(', ')})` : `unknown kind ${JSON.stringify(kind)}; expected one of ${POLICY_KINDS.join(', ')}`);
          continue;
        }
        const meta = isRecord(value.metadata) ? value.metadata : {};
        const label = typeof meta.name === 'string' ? `${kind}/${meta.name}` : undefined;

        const result = KIND_SCHEMAS[kind as PolicyKind].safeParse(value, { reportInput: true });
        if (!result.success) {
          for (const issue of result.error.issues) {
            const path = issue.path.filter((s): s is PathSegment => typeof s !== 'symbol');
            if (issue.code === 'unrecognized_keys') {
              for (const key of issue.keys) report([...path, key], `unknown field "${key}"`, label, keyOffset(doc, node, path, key));
            } else {
              report(path, issueMessage(issue, nodeAt(path).complete), label);
            }
          }
          continue;
        }

        const object = result.data as PolicyObject;
        const id = `${object.kind}/${object.metadata.name}`;
        const here = at(nodeAt(['metadata', 'name']).offset);
        const first = firstSeen.get(id);
        if (first) {
          report(['metadata', 'name'], `duplicate ${object.kind} "${object.metadata.name}": already defined at ${first.file}:${first.line}:${first.column}`, id);
          continue;
        }
        firstSeen.set(id, here);
        origins.set(id, { file: source.file, root: node, lines, doc });
        objects.push(object);
      }
    }
    flush();
  }
  return done();
}

/** yaml's messages end with " at line L, column C" even unprettified in some cases; the location is reported apart. */
function yamlMessage(message: string): string {
  return message.replace(/ at line \d+, column \d+:?[\s\S]*$/, '');
}

/** `file:line:column: path: message`, the form editors and terminals link. */
export function formatPolicyError(e: PolicyError): string {
  const where = e.line > 0 ? `${e.file}:${e.line}:${e.column}` : e.file;
  return `${where}: ${e.path ? `${e.path}: ` : ''}${e.message}`;
}
