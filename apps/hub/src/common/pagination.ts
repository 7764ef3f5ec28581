import { z } from 'zod';
import { DomainError } from '../errors/domain-error.js';

export const MAX_PAGE = 500;

export const PageQuerySchema = z
  .object({
    limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(100).describe('page size, at most 500'),
    cursor: z.string().max(512).optional().describe('opaque cursor from the previous page'),
  })
  .strict();

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** Cursors are opaque to clients: base64url of the last row's sort key. */
export function encodeCursor(key: string): string {
  return Buffer.from(JSON.stringify({ k: key }), 'utf8').toString('base64url');
}

/** What a list sorts by, so that a forged cursor is refused here (400) rather than by Postgres (500). */
export type CursorKey = 'text' | 'integer' | 'timestamp';

const KEY_SHAPES: Record<CursorKey, (k: string) => boolean> = {
  // Postgres text cannot hold NUL.
  text: (k) => !k.includes('\u0000'),
  // A bigint id.
  integer: (k) => /^\d{1,18}$/.test(k),
  // What toISOString() writes.
  timestamp: (k) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(k) && !Number.isNaN(Date.parse(k)),
};

export function decodeCursor(cursor: string | undefined, key: CursorKey = 'text'): string | null {
  if (cursor === undefined) return null;
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { k?: unknown };
    if (typeof parsed.k === 'string' && KEY_SHAPES[key](parsed.k)) return parsed.k;
  } catch {
    /* fall through */
  }
  throw new DomainError('invalid_cursor', 400, 'cursor is not one this API issued', { field: 'cursor' });
}

/** Given limit+1 rows sorted by key, builds the page. */
export function toPage<R, T>(rows: R[], limit: number, key: (r: R) => string, map: (r: R) => T): Page<T> {
  const more = rows.length > limit;
  const shown = more ? rows.slice(0, limit) : rows;
  const last = shown[shown.length - 1];
  return { items: shown.map(map), nextCursor: more && last !== undefined ? encodeCursor(key(last)) : null };
}
