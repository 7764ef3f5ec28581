import type { DesiredDeployment } from '@flotilla/contracts';
import { ScheduleError, WEEKDAYS, ZonedClock, type WallClock } from './zoned-clock.js';

export type Schedule = NonNullable<DesiredDeployment['schedule']>;
type ScheduleWindow = Schedule['windows'][number];

/**
 * Replicas a deployment should have at one instant, and why: the index of
 * the first schedule window that holds the instant, `outside` when none
 * does, `always` when the deployment has no schedule.
 */
export interface EffectiveReplicas {
  min: number;
  max: number;
  window: number | 'outside' | 'always';
}

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
/** Any schedule repeats every week of wall-clock time; eight days covers one full cycle from any instant. */
const HORIZON_MS = 8 * DAY_MS;

function parseClock(value: string, where: string): number {
  const match = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(value);
  if (!match) throw new ScheduleError(`${where} ${JSON.stringify(value)} must be HH:MM (24 h)`);
  return Number(match[1]) * 60 + Number(match[2]);
}

interface CompiledWindow {
  days: Set<number>;
  start: number;
  end: number;
  replicas: { min: number; max: number };
}

function compile(schedule: Schedule): CompiledWindow[] {
  return schedule.windows.map((w: ScheduleWindow, i) => {
    const days = new Set<number>();
    for (const day of w.days) {
      const index = WEEKDAYS.indexOf(day);
      if (index < 0) throw new ScheduleError(`windows[${i}].days: ${JSON.stringify(day)} is not one of ${WEEKDAYS.join(', ')}`);
      days.add(index);
    }
    return {
      days,
      start: parseClock(w.start, `windows[${i}].start`),
      end: parseClock(w.end, `windows[${i}].end`),
      replicas: { min: w.replicas.min, max: w.replicas.max },
    };
  });
}

/**
 * Whether a window holds a wall-clock moment. `days` are the days a window
 * starts on: a window whose start is after its end runs past midnight into
 * the next day (fri 22:00-02:00 holds saturday 01:00), and one whose start
 * equals its end lasts 24 hours.
 */
function holds(w: CompiledWindow, clock: WallClock): boolean {
  const today = w.days.has(clock.weekday);
  const yesterday = w.days.has((clock.weekday + 6) % 7);
  const m = clock.minuteOfDay;
  if (w.start < w.end) return today && m >= w.start && m < w.end;
  return (today && m >= w.start) || (yesterday && m < w.end);
}

function evaluate(windows: CompiledWindow[], schedule: Schedule, clock: WallClock): EffectiveReplicas {
  const index = windows.findIndex((w) => holds(w, clock));
  const found = windows[index];
  return found
    ? { min: found.replicas.min, max: found.replicas.max, window: index }
    : { min: schedule.outside.min, max: schedule.outside.max, window: 'outside' };
}

/**
 * The replicas a deployment should have at `now`, evaluating its schedule in
 * the schedule's timezone: wall-clock time and weekdays there, so "07:00" is
 * 07:00 local on both sides of a DST change. The first window that holds
 * `now` wins. During a spring-forward gap, times that do not exist are
 * skipped (a window starting at 02:30 starts at 03:00); during a fall-back
 * overlap the repeated hour is evaluated twice, as the wall clock reads it.
 * Throws ScheduleError for an unknown timezone or a malformed window.
 */
export function effectiveReplicas(deployment: Pick<DesiredDeployment, 'replicas' | 'schedule'>, now: Date): EffectiveReplicas {
  const { schedule } = deployment;
  if (!schedule) return { min: deployment.replicas.min, max: deployment.replicas.max, window: 'always' };
  const clock = new ZonedClock(schedule.timezone);
  return evaluate(compile(schedule), schedule, clock.read(now.getTime()));
}

const sameReplicas = (a: EffectiveReplicas, b: EffectiveReplicas): boolean =>
  a.window === b.window && a.min === b.min && a.max === b.max;

/**
 * The first instant after `now` at which `effectiveReplicas` changes (another
 * window, or in/out of the windows), or null when it does not change within a
 * week (the schedule is constant). A runtime requeues at this instant so that
 * scaling happens on time, even offline.
 *
 * The result can only change where the local wall clock reaches a window's
 * start or end, or jumps across one (a DST change), so those instants are the
 * only candidates; each is checked by evaluating it.
 */
export function nextTransition(schedule: Schedule, now: Date): Date | null {
  const windows = compile(schedule);
  const clock = new ZonedClock(schedule.timezone);
  const nowMs = now.getTime();
  const horizon = nowMs + HORIZON_MS;
  const current = evaluate(windows, schedule, clock.read(nowMs));

  const boundaries = new Set(windows.flatMap((w) => [w.start, w.end]));
  const today = clock.read(nowMs);
  const localMidnight = Date.UTC(today.year, today.month - 1, today.day);
  const candidates = new Set<number>(clock.offsetChanges(nowMs, horizon));
  for (let day = -1; day <= 9; day += 1) {
    for (const minute of boundaries) {
      for (const instant of clock.instantsAt(localMidnight + day * DAY_MS + minute * MINUTE_MS)) candidates.add(instant);
    }
  }
  const ordered = [...candidates].filter((t) => t > nowMs && t <= horizon).sort((a, b) => a - b);
  for (const t of ordered) {
    if (!sameReplicas(evaluate(windows, schedule, clock.read(t)), current)) return new Date(t);
  }
  return null;
}


