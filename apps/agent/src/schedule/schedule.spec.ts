import fc from 'fast-check';
import { effectiveReplicas, nextTransition, type Schedule } from './schedule.js';
import { ScheduleError, WEEKDAYS, type Weekday } from './zoned-clock.js';

const replicas = { min: 1, max: 1 };
const at = (iso: string) => new Date(iso);
const withSchedule = (schedule: Schedule) => ({ replicas, schedule });
const paris = (windows: Schedule['windows'], outside = { min: 0, max: 0 }): Schedule => ({ timezone: 'Europe/Paris', windows, outside });
const weekdays: Weekday[] = ['mon', 'tue', 'wed', 'thu', 'fri'];
const office = paris([{ days: weekdays, start: '07:00', end: '19:00', replicas: { min: 2, max: 8 } }]);

describe('effectiveReplicas', () => {
  it('is the deployment replicas, always, without a schedule', () => {
    expect(effectiveReplicas({ replicas: { min: 1, max: 4 } }, at('2025-01-01T00:00:00Z'))).toEqual({ min: 1, max: 4, window: 'always' });
  });

  it('uses the window in the schedule timezone and the outside replicas elsewhere', () => {
    // Wednesday 2025-01-15, Paris is UTC+1: 06:30Z is 07:30 local.
    expect(effectiveReplicas(withSchedule(office), at('2025-01-15T06:30:00Z'))).toEqual({ min: 2, max: 8, window: 0 });
    expect(effectiveReplicas(withSchedule(office), at('2025-01-15T05:59:00Z'))).toEqual({ min: 0, max: 0, window: 'outside' });
    // Saturday is not a window day.
    expect(effectiveReplicas(withSchedule(office), at('2025-01-18T10:00:00Z')).window).toBe('outside');
  });

  it('takes the weekday in the schedule timezone, not in UTC', () => {
    // Monday 2025-01-13 00:30 in Auckland is still Sunday in UTC.
    const s: Schedule = { timezone: 'Pacific/Auckland', windows: [{ days: ['mon'], start: '00:00', end: '01:00', replicas: { min: 3, max: 3 } }], outside: { min: 0, max: 0 } };
    expect(effectiveReplicas(withSchedule(s), at('2025-01-12T11:30:00Z'))).toEqual({ min: 3, max: 3, window: 0 });
  });

  it('runs a window whose start is after its end into the next day', () => {
    const s: Schedule = { timezone: 'UTC', windows: [{ days: ['fri'], start: '22:00', end: '02:00', replicas: { min: 1, max: 1 } }], outside: { min: 0, max: 0 } };
    const windowAt = (iso: string) => effectiveReplicas(withSchedule(s), at(iso)).window;
    expect(windowAt('2025-02-28T21:59:00Z')).toBe('outside'); // Friday
    expect(windowAt('2025-02-28T22:00:00Z')).toBe(0);
    expect(windowAt('2025-03-01T01:59:00Z')).toBe(0); // Saturday, carried over from Friday
    expect(windowAt('2025-03-01T02:00:00Z')).toBe('outside');
    expect(windowAt('2025-03-01T23:00:00Z')).toBe('outside'); // Saturday evening is not a window day
  });

  it('treats an end of 00:00 as midnight and equal start and end as 24 hours', () => {
    const s: Schedule = {
      timezone: 'UTC',
      windows: [
        { days: ['mon'], start: '18:00', end: '00:00', replicas: { min: 1, max: 1 } },
        { days: ['sat'], start: '06:00', end: '06:00', replicas: { min: 2, max: 2 } },
      ],
      outside: { min: 0, max: 0 },
    };
    const windowAt = (iso: string) => effectiveReplicas(withSchedule(s), at(iso)).window;
    expect(windowAt('2025-03-03T23:59:00Z')).toBe(0); // Monday
    expect(windowAt('2025-03-04T00:00:00Z')).toBe('outside');
    expect(windowAt('2025-03-08T05:59:00Z')).toBe('outside'); // Saturday
    expect(windowAt('2025-03-08T06:00:00Z')).toBe(1);
    expect(windowAt('2025-03-09T05:59:00Z')).toBe(1);
    expect(windowAt('2025-03-09T06:00:00Z')).toBe('outside');
  });

  it('lets the first window that holds the instant win', () => {
    const s = paris([
      { days: ['wed'], start: '12:00', end: '13:00', replicas: { min: 5, max: 5 } },
      { days: weekdays, start: '07:00', end: '19:00', replicas: { min: 2, max: 2 } },
    ]);
    expect(effectiveReplicas(withSchedule(s), at('2025-01-15T11:30:00Z'))).toEqual({ min: 5, max: 5, window: 0 });
    expect(effectiveReplicas(withSchedule(s), at('2025-01-15T12:30:00Z'))).toEqual({ min: 2, max: 2, window: 1 });
  });

  it('rejects an unknown timezone and a malformed clock with a clear error', () => {
    const bad = { ...office, timezone: 'Mars/Olympus_Mons' };
    expect(() => effectiveReplicas(withSchedule(bad), at('2025-01-01T00:00:00Z'))).toThrow(ScheduleError);
    expect(() => effectiveReplicas(withSchedule(bad), at('2025-01-01T00:00:00Z'))).toThrow('unknown timezone "Mars/Olympus_Mons"');
    const badClock = paris([{ days: ['mon'], start: '7:00', end: '19:00', replicas }]);
    expect(() => effectiveReplicas(withSchedule(badClock), at('2025-01-01T00:00:00Z'))).toThrow('windows[0].start "7:00" must be HH:MM (24 h)');
  });
});

describe('schedules across daylight saving time (Europe/Paris)', () => {
  it('starts a 07:00 window at 07:00 local on both sides of the March change', () => {
    // Friday before the change: UTC+1. Monday after: UTC+2.
    expect(effectiveReplicas(withSchedule(office), at('2025-03-28T06:00:00Z')).window).toBe(0);
    expect(effectiveReplicas(withSchedule(office), at('2025-03-28T05:59:00Z')).window).toBe('outside');
    expect(nextTransition(office, at('2025-03-28T19:00:00Z'))).toEqual(at('2025-03-31T05:00:00Z'));
    expect(nextTransition(office, at('2025-03-28T12:00:00Z'))).toEqual(at('2025-03-28T18:00:00Z'));
  });

  it('starts a 07:00 window at 07:00 local on both sides of the October change', () => {
    expect(nextTransition(office, at('2025-10-23T18:00:00Z'))).toEqual(at('2025-10-24T05:00:00Z')); // Friday, UTC+2
    expect(nextTransition(office, at('2025-10-24T18:00:00Z'))).toEqual(at('2025-10-27T06:00:00Z')); // Monday, UTC+1
  });

  it('opens a window that starts in the skipped hour when the clock jumps to 03:00', () => {
    // 2025-03-30: 02:00 CET becomes 03:00 CEST at 01:00Z; 02:30 never happens.
    const s = paris([{ days: ['sun'], start: '02:30', end: '03:30', replicas: { min: 1, max: 1 } }]);
    expect(effectiveReplicas(withSchedule(s), at('2025-03-30T00:59:00Z')).window).toBe('outside');
    expect(nextTransition(s, at('2025-03-30T00:30:00Z'))).toEqual(at('2025-03-30T01:00:00Z'));
    expect(effectiveReplicas(withSchedule(s), at('2025-03-30T01:00:00Z')).window).toBe(0);
    expect(nextTransition(s, at('2025-03-30T01:00:00Z'))).toEqual(at('2025-03-30T01:30:00Z'));
  });

  it('follows the wall clock through the repeated hour in October', () => {
    // 2025-10-26: 03:00 CEST becomes 02:00 CET at 01:00Z, so 02:00-02:30 happens twice.
    const s = paris([{ days: ['sun'], start: '02:00', end: '02:30', replicas: { min: 1, max: 1 } }]);
    const chain: string[] = [];
    let t: Date | null = at('2025-10-25T23:00:00Z');
    for (let i = 0; i < 4 && t; i += 1) {
      t = nextTransition(s, t);
      if (t) chain.push(`${t.toISOString()} ${effectiveReplicas(withSchedule(s), t).window}`);
    }
    expect(chain).toEqual([
      '2025-10-26T00:00:00.000Z 0',
      '2025-10-26T00:30:00.000Z outside',
      '2025-10-26T01:00:00.000Z 0',
      '2025-10-26T01:30:00.000Z outside',
    ]);
  });
});

describe('nextTransition', () => {
  it('is null for a schedule that never changes', () => {
    const always = paris([{ days: [...WEEKDAYS], start: '00:00', end: '00:00', replicas: { min: 1, max: 1 } }]);
    expect(nextTransition(always, at('2025-03-29T12:00:00Z'))).toBeNull();
  });

  it('finds the next start from outside and the end from inside, including at the exact start', () => {
    expect(nextTransition(office, at('2025-01-15T06:00:00Z'))).toEqual(at('2025-01-15T18:00:00Z'));
    expect(nextTransition(office, at('2025-01-15T05:59:59.999Z'))).toEqual(at('2025-01-15T06:00:00Z'));
  });
});

/* ------------------------------------------------------------ properties */

const clockArb = fc.integer({ min: 0, max: 1439 }).map((m) => `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`);
const replicasArb = fc.tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 5 })).map(([a, b]) => ({ min: Math.min(a, b), max: Math.max(a, b) }));
const windowArb = fc.record({
  days: fc.subarray([...WEEKDAYS], { minLength: 1 }),
  start: clockArb,
  end: clockArb,
  replicas: replicasArb,
});
const scheduleArb = (zones: string[]) =>
  fc.record({
    timezone: fc.constantFrom(...zones),
    windows: fc.array(windowArb, { minLength: 1, maxLength: 4 }),
    outside: replicasArb,
  });
const instantArb = fc.date({ min: new Date('2020-01-01T00:00:00Z'), max: new Date('2035-12-31T23:59:59Z'), noInvalidDate: true });

/** Zones whose offset never changes, so local time is plain arithmetic: an oracle independent of Intl. */
const FIXED_OFFSETS: Record<string, number> = { UTC: 0, 'Etc/GMT-5': 300, 'Etc/GMT+8': -480, 'Asia/Kolkata': 330, 'Asia/Kathmandu': 345 };
const DST_ZONES = ['Europe/Paris', 'America/New_York', 'Australia/Lord_Howe', 'Pacific/Chatham', 'America/Santiago'];

/** The schedule as a week of minutes, each holding the first window that covers it: a second formulation to check against. */
function weekTable(schedule: Schedule): Int16Array {
  const table = new Int16Array(7 * 1440).fill(-1);
  const minutes = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3));
  schedule.windows.forEach((w, index) => {
    const s = minutes(w.start);
    const e = minutes(w.end);
    const length = s < e ? e - s : 1440 - s + e;
    for (const day of w.days) {
      const first = WEEKDAYS.indexOf(day) * 1440 + s;
      for (let k = 0; k < length; k += 1) {
        const slot = (first + k) % (7 * 1440);
        if (table[slot] === -1) table[slot] = index;
      }
    }
  });
  return table;
}

describe('schedule properties', () => {
  it('agree with a week-of-minutes table in fixed-offset zones', () => {
    fc.assert(
      fc.property(scheduleArb(Object.keys(FIXED_OFFSETS)), instantArb, (schedule, now) => {
        const local = new Date(now.getTime() + (FIXED_OFFSETS[schedule.timezone] as number) * 60_000);
        const weekday = (local.getUTCDay() + 6) % 7; // Monday = 0
        const slot = weekday * 1440 + local.getUTCHours() * 60 + local.getUTCMinutes();
        const index = weekTable(schedule)[slot] as number;
        const expected = index === -1 ? { ...schedule.outside, window: 'outside' } : { ...schedule.windows[index]!.replicas, window: index };
        expect(effectiveReplicas({ replicas, schedule }, now)).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('always return the replicas of the window they name', () => {
    fc.assert(
      fc.property(scheduleArb([...DST_ZONES, ...Object.keys(FIXED_OFFSETS)]), instantArb, (schedule, now) => {
        const r = effectiveReplicas({ replicas, schedule }, now);
        const source = r.window === 'outside' ? schedule.outside : schedule.windows[r.window as number]?.replicas;
        expect(source).toEqual({ min: r.min, max: r.max });
      }),
      { numRuns: 200 },
    );
  });

  it('change at nextTransition and at no sampled instant before it', () => {
    fc.assert(
      fc.property(
        scheduleArb([...DST_ZONES, 'UTC', 'Asia/Kathmandu']),
        instantArb,
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 10, maxLength: 10 }),
        (schedule, now, fractions) => {
          const evaluate = (t: number) => effectiveReplicas({ replicas, schedule }, new Date(t));
          const current = evaluate(now.getTime());
          const next = nextTransition(schedule, now);
          const end = next ? next.getTime() : now.getTime() + 8 * 86_400_000;
          if (next) {
            expect(next.getTime()).toBeGreaterThan(now.getTime());
            expect(evaluate(next.getTime())).not.toEqual(current);
            // The minute just before the transition still has the current value.
            if (next.getTime() - 60_000 > now.getTime()) expect(evaluate(next.getTime() - 60_000)).toEqual(current);
          }
          for (const f of fractions) {
            const t = now.getTime() + Math.floor(f * (end - now.getTime() - 1));
            if (t >= now.getTime() && t < end) expect(evaluate(t)).toEqual(current);
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
