/**
 * Wall-clock reading of an instant in an IANA timezone, through
 * Intl.DateTimeFormat (the only timezone database a Node process carries).
 * Schedules are written in wall-clock time ("07:00 on weekdays, Paris"), so
 * everything here works in local calendar fields, never in fixed offsets.
 */

export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

const MINUTE_MS = 60_000;

export class ScheduleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScheduleError';
  }
}

export interface WallClock {
  year: number;
  /** 1-12 */
  month: number;
  day: number;
  /** 0 = Monday ... 6 = Sunday, as in WEEKDAYS. */
  weekday: number;
  /** Minutes since local midnight, 0-1439. */
  minuteOfDay: number;
}

const SHORT_WEEKDAYS: Record<string, number> = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };

/** Reads instants in one timezone; construct once per evaluation, formatters are costly to build. */
export class ZonedClock {
  private readonly format: Intl.DateTimeFormat;

  constructor(readonly timezone: string) {
    try {
      this.format = new Intl.DateTimeFormat('en-US', {
        timeZone: timezone,
        // h23: midnight is 00, never the 24 some locales print with hour12: false.
        hourCycle: 'h23',
        weekday: 'short',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
      });
    } catch {
      throw new ScheduleError(`unknown timezone ${JSON.stringify(timezone)}: use an IANA name such as "Europe/Paris" or "UTC"`);
    }
  }

  read(instantMs: number): WallClock {
    const fields: Record<string, string> = {};
    for (const part of this.format.formatToParts(instantMs)) fields[part.type] = part.value;
    const weekday = SHORT_WEEKDAYS[fields.weekday ?? ''];
    if (weekday === undefined) throw new Error(`unexpected weekday ${fields.weekday} from Intl`);
    return {
      year: Number(fields.year),
      month: Number(fields.month),
      day: Number(fields.day),
      weekday,
      minuteOfDay: Number(fields.hour) * 60 + Number(fields.minute),
    };
  }

  /** The local wall time as if it were UTC, in ms: differences give the UTC offset. */
  private localAsUtc(instantMs: number): number {
    const w = this.read(instantMs);
    return Date.UTC(w.year, w.month - 1, w.day) + w.minuteOfDay * MINUTE_MS;
  }

  /** Offset from UTC in minutes at an instant (Paris: 60 in winter, 120 in summer). */
  offsetMinutes(instantMs: number): number {
    const floored = Math.floor(instantMs / MINUTE_MS) * MINUTE_MS;
    return Math.round((this.localAsUtc(floored) - floored) / MINUTE_MS);
  }

  /**
   * The instants (0, 1 or 2) whose wall time is exactly this local date and
   * minute: none inside a spring-forward gap, two inside a fall-back overlap.
   * `localMs` is the local date and time written as UTC (Date.UTC(...)).
   */
  instantsAt(localMs: number): number[] {
    const offsets = new Set([this.offsetMinutes(localMs - 36 * 3_600_000), this.offsetMinutes(localMs + 36 * 3_600_000), this.offsetMinutes(localMs)]);
    const found = new Set<number>();
    for (const offset of offsets) {
      const candidate = localMs - offset * MINUTE_MS;
      if (this.localAsUtc(candidate) === localMs) found.add(candidate);
    }
    return [...found].sort((a, b) => a - b);
  }

  /**
   * Instants in (fromMs, toMs] where the UTC offset changes (DST starts or
   * ends), to the minute. Offsets change at most a few times a year and never
   * twice within an hour, so hourly sampling finds every change.
   */
  offsetChanges(fromMs: number, toMs: number): number[] {
    const changes: number[] = [];
    const step = 3_600_000;
    let prevT = fromMs;
    let prevOffset = this.offsetMinutes(prevT);
    for (let t = fromMs + step; prevT < toMs; t += step) {
      const at = Math.min(t, toMs);
      const offset = this.offsetMinutes(at);
      if (offset !== prevOffset) {
        // Binary search on whole minutes for the first one with the new offset.
        let lo = Math.floor(prevT / MINUTE_MS);
        let hi = Math.floor(at / MINUTE_MS);
        while (hi - lo > 1) {
          const mid = Math.floor((lo + hi) / 2);
          if (this.offsetMinutes(mid * MINUTE_MS) === prevOffset) lo = mid;
          else hi = mid;
        }
        changes.push(hi * MINUTE_MS);
      }
      prevT = at;
      prevOffset = offset;
    }
    return changes;
  }
}
