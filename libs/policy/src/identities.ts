import { isSeq, LineCounter, type Node, parseAllDocuments } from 'yaml';
import type { PolicyError, PolicySource } from './documents.js';
import { API_VERSION, MetadataSchema, POLICY_KINDS, type PolicyKind } from './schemas.js';
import { BoundedErrors, POLICY_LIMITS, checkValueBounds, scanPolicyText } from './input-limits.js';

/** Which object a document names: all that `delete -f` needs. */
export interface PolicyIdentity {
  kind: PolicyKind;
  name: string;
  /** Where the document is, for messages. */
  file: string;
  line: number;
}

export interface ParsedIdentities {
  identities: PolicyIdentity[];
  /** The first POLICY_LIMITS.errors problems. */
  errors: PolicyError[];
  /** How many problems there are in all. */
  errorCount: number;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The kind and name of every document in policy files, without validating the
 * specs: deleting an object needs only its identity, and a file written for an
 * older schema must still be deletable (as `kubectl delete -f` reads only
 * kind and name). apiVersion, kind and metadata.name are checked, and each
 * problem names its file and line. The same object named twice counts once.
 */
export function readPolicyIdentities(sources: readonly PolicySource[]): ParsedIdentities {
  const identities: PolicyIdentity[] = [];
  const errors = new BoundedErrors<PolicyError>();
  const seen = new Set<string>();
  const done = (): ParsedIdentities => ({ identities, errors: errors.items, errorCount: errors.total });
  const tooBig = scanPolicyText(sources);
  if (tooBig) {
    errors.add({ file: tooBig.file, line: tooBig.line, column: 0, path: '', message: tooBig.message });
    return done();
  }
  let documents = 0;
  for (const source of sources) {
    const lines = new LineCounter();
    let docs: ReturnType<typeof parseAllDocuments>;
    try {
      docs = parseAllDocuments(source.text, { lineCounter: lines, prettyErrors: false });
    } catch (err) {
      if (!(err instanceof RangeError)) throw err;
      errors.add({ file: source.file, line: 0, column: 0, path: '', message: `cannot be parsed: ${err.message} (nesting is limited to ${POLICY_LIMITS.depth} levels)` });
      continue;
    }
    const at = (offset: number | undefined) => {
      const p = lines.linePos(offset ?? 0);
      return { file: source.file, line: p.line, column: p.col };
    };
    if ('empty' in docs) continue;
    for (const doc of docs) {
      const firstError = doc.errors[0];
      if (firstError) {
        errors.add({ ...at(firstError.pos[0]), path: '', message: firstError.message.replace(/ at line \d+, column \d+:?[\s\S]*$/, '') });
        continue;
      }
      const root = doc.contents;
      if (root === null) continue;
      let js: unknown;
      try {
        js = doc.toJS({ maxAliasCount: 100 });
      } catch (e) {
        errors.add({ ...at(root.range?.[0]), path: '', message: e instanceof Error ? e.message : String(e) });
        continue;
      }
      if (js === null || js === undefined) continue;
      const bounds = checkValueBounds(js);
      if (bounds) {
        errors.add({ ...at(root.range?.[0]), path: bounds.path.join('.'), message: bounds.message });
        continue;
      }
      // A top-level list holds several objects, as in apply.
      const nodes: (Node | null)[] = isSeq(root) ? (root.items as Node[]) : [root];
      const values: unknown[] = isSeq(root) ? (js as unknown[]) : [js];
      documents += values.length;
      if (documents > POLICY_LIMITS.documents) {
        errors.add({ ...at(root.range?.[0]), path: '', message: `more than ${POLICY_LIMITS.documents} policy objects in one go` });
        return done();
      }
      for (const [i, value] of values.entries()) {
        const where = at((nodes[i] ?? root).range?.[0]);
        const problem = (path: string, message: string) => errors.add({ ...where, path, message });
        if (!isRecord(value)) {
          problem('', 'expected a policy object with apiVersion, kind and metadata.name');
          continue;
        }
        if (value.apiVersion !== API_VERSION) {
          problem('apiVersion', `must be "${API_VERSION}", got ${JSON.stringify(value.apiVersion ?? null)}`);
          continue;
        }
        if (typeof value.kind !== 'string' || !(POLICY_KINDS as readonly string[]).includes(value.kind)) {
          problem('kind', `expected one of ${POLICY_KINDS.join(', ')}, got ${JSON.stringify(value.kind ?? null)}`);
          continue;
        }
        const name = isRecord(value.metadata) ? value.metadata.name : undefined;
        const checked = MetadataSchema.shape.name.safeParse(name);
        if (!checked.success) {
          problem('metadata.name', name === undefined ? 'required field is missing' : `${JSON.stringify(name)} is not a valid name (a DNS label)`);
          continue;
        }
        const id = `${value.kind}/${checked.data}`;
        if (seen.has(id)) continue;
        seen.add(id);
        identities.push({ kind: value.kind as PolicyKind, name: checked.data, file: source.file, line: where.line });
      }
    }
  }
  return done();
}
