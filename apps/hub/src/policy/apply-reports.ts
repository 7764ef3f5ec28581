import type { ApplyReportPage } from '@flotilla/contracts';
import type { SpokeDiff } from '@flotilla/policy';
import type { DataSource } from 'typeorm';
import { DomainError } from '../errors/domain-error.js';

/** Spokes listed in an apply's or delete's own answer; more go to a report. */
export const SPOKES_IN_ANSWER = 100;
/** How long a report can be read. */
export const REPORT_TTL_HOURS = 24;

export interface SpokeDiffSummary {
  spokes: number;
  added: number;
  removed: number;
  changed: number;
}

/** What an answer carries about the spokes: counts, the first page, and where the rest is. */
export interface BoundedSpokes {
  spokes: SpokeDiff[];
  spokeSummary: SpokeDiffSummary;
  reportId: string | null;
  spokesNextCursor: string | null;
}

export function summarise(diffs: readonly SpokeDiff[]): SpokeDiffSummary {
  let added = 0;
  let removed = 0;
  let changed = 0;
  for (const d of diffs) {
    added += d.added.length;
    removed += d.removed.length;
    changed += d.changed.length;
  }
  return { spokes: diffs.length, added, removed, changed };
}

const encode = (offset: number): string => Buffer.from(JSON.stringify({ o: offset }), 'utf8').toString('base64url');

function decode(cursor: string | undefined): number {
  if (cursor === undefined) return 0;
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { o?: unknown };
    if (typeof parsed.o === 'number' && Number.isInteger(parsed.o) && parsed.o >= 0) return parsed.o;
  } catch {
    /* fall through */
  }
  throw new DomainError('invalid_cursor', 400, 'cursor is not one this API issued', { field: 'cursor' });
}

/**
 * Keeps the answers of applies and deletes bounded: a change that touches
 * 10,000 spokes answers with counts and the first page of diffs, not 800 KB.
 * The whole per-spoke diff is stored once (outside the apply's transaction,
 * so dry runs, which roll back, have one too) and paged from Postgres.
 */
export class ApplyReports {
  constructor(
    private readonly ds: DataSource,
    private readonly pageSize = SPOKES_IN_ANSWER,
  ) {}

  /** `diffs` sorted by spoke name, as diffDesired returns them. */
  async bound(diffs: SpokeDiff[], meta: { dryRun: boolean; actor: string }): Promise<BoundedSpokes> {
    const spokeSummary = summarise(diffs);
    if (diffs.length <= this.pageSize) return { spokes: diffs, spokeSummary, reportId: null, spokesNextCursor: null };
    // Expired reports go as new ones come: the table holds a day of large changes at most.
    await this.ds.query(`DELETE FROM apply_reports WHERE created_at < now() - make_interval(hours => $1)`, [REPORT_TTL_HOURS]);
    const rows: { id: string }[] = await this.ds.query(
      `INSERT INTO apply_reports (dry_run, actor, summary, spokes) VALUES ($1, $2, $3::jsonb, $4::jsonb) RETURNING id`,
      [meta.dryRun, meta.actor, JSON.stringify(spokeSummary), JSON.stringify(diffs)],
    );
    return { spokes: diffs.slice(0, this.pageSize), spokeSummary, reportId: rows[0]!.id, spokesNextCursor: encode(this.pageSize) };
  }

  /** One page of a stored report; 404 when it does not exist or has expired. */
  async page(id: string, cursor: string | undefined, limit: number): Promise<ApplyReportPage> {
    const offset = decode(cursor);
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) throw notFound(id);
    // Only the page leaves Postgres, not the whole array.
    const rows: { id: string; created_at: Date; dry_run: boolean; summary: SpokeDiffSummary; total: number; items: SpokeDiff[] | null }[] = await this.ds.query(
      `SELECT r.id, r.created_at, r.dry_run, r.summary, jsonb_array_length(r.spokes) AS total,
              (SELECT jsonb_agg(e ORDER BY i) FROM jsonb_array_elements(r.spokes) WITH ORDINALITY AS t(e, i) WHERE i > $2 AND i <= $2 + $3) AS items
       FROM apply_reports r WHERE r.id = $1 AND r.created_at >= now() - make_interval(hours => $4)`,
      [id, offset, limit, REPORT_TTL_HOURS],
    );
    const r = rows[0];
    if (!r) throw notFound(id);
    const next = offset + limit;
    return {
      id: r.id,
      createdAt: r.created_at.toISOString(),
      dryRun: r.dry_run,
      summary: r.summary,
      items: r.items ?? [],
      nextCursor: next < Number(r.total) ? encode(next) : null,
    };
  }
}

const notFound = (id: string) => new DomainError('not_found', 404, `apply report ${id} not found (reports are kept for ${REPORT_TTL_HOURS} hours)`);
