/**
 * Bounds on policy input, the same on every path that reads it (API apply,
 * diff and delete, git sync, `flotilla validate/diff/apply/delete`). YAML
 * parsing costs far more than reading bytes, so the cheap checks here run
 * first, over the raw text in one pass, and a hostile body is refused before
 * the parser sees it; the exact checks run on the parsed values, without
 * recursion.
 */
export const POLICY_LIMITS = {
  /** Bytes of policy text read in one go (all files together). */
  bytes: 4 * 1024 * 1024,
  /** YAML documents (and objects of top-level lists) in one go. */
  documents: 5_000,
  /** Lines plus flow separators (`,`), an upper bound on the entries the parser would build. */
  entries: 50_000,
  /** Items of any one list. */
  listItems: 10_000,
  /** Nesting of lists and mappings. */
  depth: 32,
  /** Problems reported in full; the total is always given. */
  errors: 100,
} as const;

/** Deepest indentation accepted by the pre-scan: with one space a level, well past `depth`. */
const MAX_INDENT = 256;

export interface InputProblem {
  file: string;
  line: number;
  message: string;
}

/**
 * The raw-text checks: total bytes, entries, flow nesting and indentation.
 * One linear pass, no allocation per character. Returns the first problem, or
 * null when the text may be parsed.
 */
export function scanPolicyText(sources: readonly { file: string; text: string }[]): InputProblem | null {
  let entries = 0;
  for (const s of sources) {
    const text = s.text;
    let line = 1;
    let depth = 0;
    let indent = 0;
    let atLineStart = true;
    let quote: '"' | "'" | null = null;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10 /* \n */) {
        line++;
        entries++;
        atLineStart = true;
        indent = 0;
        // Quoted scalars in policy fit on a line; ending the quote here keeps a stray apostrophe from hiding brackets.
        quote = null;
        if (entries > POLICY_LIMITS.entries) return tooManyEntries(s.file, line);
        continue;
      }
      if (atLineStart) {
        // Compact sequences and explicit keys (`- - - x`, `? ? x`) nest on one line: their indicators count as indentation.
        const dash = (c === 45 /* - */ || c === 63) /* ? */ && (i + 1 === text.length || text.charCodeAt(i + 1) === 32 || text.charCodeAt(i + 1) === 10);
        if (c === 32 /* space */ || dash) {
          if (++indent > MAX_INDENT) return { file: s.file, line, message: `indented more than ${MAX_INDENT} columns (nesting is limited to ${POLICY_LIMITS.depth} levels)` };
          continue;
        }
        atLineStart = false;
      }
      if (quote) {
        if (c === 92 /* \ */ && quote === '"') i++;
        else if (c === quote.charCodeAt(0)) quote = null;
        continue;
      }
      // A quote opens a scalar only where one can start: `it's` is plain text, and its apostrophe must not hide what follows.
      const prev = i === 0 ? 32 : text.charCodeAt(i - 1);
      const scalarStart = prev === 32 || prev === 9 || prev === 91 || prev === 123 || prev === 44;
      if (c === 34 /* " */ && scalarStart) quote = '"';
      else if (c === 39 /* ' */ && scalarStart) quote = "'";
      else if (c === 35 /* # */ && (i === 0 || text.charCodeAt(i - 1) === 32 || text.charCodeAt(i - 1) === 10)) {
        // A comment: skip to the end of the line.
        while (i + 1 < text.length && text.charCodeAt(i + 1) !== 10) i++;
      } else if (c === 91 /* [ */ || c === 123 /* { */) {
        if (++depth > POLICY_LIMITS.depth) return { file: s.file, line, message: `nested more than ${POLICY_LIMITS.depth} levels deep` };
      } else if (c === 93 /* ] */ || c === 125 /* } */) {
        if (depth > 0) depth--;
      } else if (c === 44 /* , */) {
        if (++entries > POLICY_LIMITS.entries) return tooManyEntries(s.file, line);
      }
    }
  }
  // Bytes last: the structure scan above stops early on a hostile body, a byte count never does.
  // A UTF-16 unit is 1 to 3 bytes of UTF-8, so the exact count is needed only in between.
  const chars = sources.reduce((n, s) => n + s.text.length, 0);
  if (chars * 3 <= POLICY_LIMITS.bytes) return null;
  let bytes = 0;
  for (const s of sources) {
    bytes += chars > POLICY_LIMITS.bytes ? s.text.length : utf8Length(s.text);
    if (bytes > POLICY_LIMITS.bytes) {
      return { file: s.file, line: 0, message: `policy input is over ${POLICY_LIMITS.bytes} bytes (the limit on one apply, diff, delete or git sync)` };
    }
  }
  return null;
}

/** UTF-8 size of a string without encoding it. */
function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

function tooManyEntries(file: string, line: number): InputProblem {
  return { file, line, message: `policy input has more than ${POLICY_LIMITS.entries} lines and list entries (the limit on one apply, diff, delete or git sync)` };
}

/**
 * The exact checks on one parsed document: nesting depth and list length,
 * walked with an explicit stack. Returns the first problem with its path, or null.
 */
export function checkValueBounds(value: unknown): { path: (string | number)[]; message: string } | null {
  const stack: Array<{ v: unknown; path: (string | number)[] }> = [{ v: value, path: [] }];
  while (stack.length > 0) {
    const { v, path } = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (path.length >= POLICY_LIMITS.depth) return { path, message: `nested more than ${POLICY_LIMITS.depth} levels deep` };
    if (Array.isArray(v)) {
      if (v.length > POLICY_LIMITS.listItems) return { path, message: `list has ${v.length} items; at most ${POLICY_LIMITS.listItems} are accepted` };
      for (let i = 0; i < v.length; i++) stack.push({ v: v[i], path: [...path, i] });
    } else {
      for (const [k, child] of Object.entries(v)) stack.push({ v: child, path: [...path, k] });
    }
  }
  return null;
}

/**
 * Keeps the first `POLICY_LIMITS.errors` problems and counts the rest, so a
 * body with a million bad items cannot make a million-line answer.
 */
export class BoundedErrors<T> {
  readonly items: T[] = [];
  total = 0;

  add(item: T): void {
    this.total++;
    if (this.items.length < POLICY_LIMITS.errors) this.items.push(item);
  }
}
