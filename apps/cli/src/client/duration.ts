import { CliError, EXIT } from '../exit-codes.js';

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** Seconds in `90s`, `30m`, `1h`, `7d` or `1h30m`; exit 3 naming the flag otherwise. */
export function parseDuration(text: string, flag: string): number {
  if (!/^(\d+[smhd])+$/.test(text)) throw new CliError(`${flag} ${JSON.stringify(text)}: expected a duration like 90s, 30m, 1h or 7d`, EXIT.invalid);
  let seconds = 0;
  for (const m of text.matchAll(/(\d+)([smhd])/g)) seconds += Number(m[1]) * UNIT_SECONDS[m[2]!]!;
  return seconds;
}

/** `in 59m`, `in 2d`, `expired 3h ago`: how far an ISO time is from now. */
export function until(iso: string | null, now = Date.now()): string {
  if (!iso) return 'never';
  const s = Math.round((Date.parse(iso) - now) / 1000);
  const span = (n: number) => (n < 120 ? `${n}s` : n < 7200 ? `${Math.round(n / 60)}m` : n < 172_800 ? `${Math.round(n / 3600)}h` : `${Math.round(n / 86_400)}d`);
  return s >= 0 ? `in ${span(s)}` : `expired ${span(-s)} ago`;
}
