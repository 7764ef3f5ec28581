import { Option } from 'commander';
import { stringify } from 'yaml';

export type OutputFormat = 'table' | 'json' | 'yaml';

export const outputOption = () => new Option('-o, --output <format>', 'table, json or yaml').choices(['table', 'json', 'yaml']).default('table');

/** JSON or YAML of what the API returned, for scripts. */
export function structured(value: unknown, format: 'json' | 'yaml'): string {
  return format === 'json' ? `${JSON.stringify(value, null, 2)}\n` : stringify(value, { lineWidth: 0 });
}

/** Each column's width: its widest cell or header. */
export function columnWidths(headers: string[], rows: string[][]): number[] {
  return headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
}

/** One line of cells padded to the widths, three spaces apart, like kubectl; the last column is not padded. */
export function tableLine(cells: string[], widths: number[]): string {
  return cells
    .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
    .join('   ')
    .trimEnd();
}

/** Columns padded to their widest cell, three spaces apart, like kubectl; the last column is not padded. */
export function table(headers: string[], rows: string[][]): string {
  const widths = columnWidths(headers, rows);
  return [tableLine(headers, widths), ...rows.map((r) => tableLine(r, widths))].join('\n') + '\n';
}

/** `5s`, `3m`, `2h`, `4d`: how long ago an ISO time was; `-` when unknown. */
export function age(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

export const labelsText = (labels: Record<string, string> | null | undefined) =>
  Object.entries(labels ?? {})
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join(',') || '<none>';

export const shortCommit = (c: string | null | undefined) => (c ? c.slice(0, 12) : '-');

/** `Key:   value` lines with the values aligned, for describe. */
export function fields(pairs: [string, string][]): string {
  const w = Math.max(...pairs.map(([k]) => k.length)) + 2;
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(w)}${v}`).join('\n') + '\n';
}

/** Indents every line of a block (a table under a heading). */
export const indent = (text: string, by = '  ') =>
  text
    .split('\n')
    .map((l) => (l ? by + l : l))
    .join('\n');
