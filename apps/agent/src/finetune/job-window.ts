import type { JobSchedule } from '@flotilla/contracts';
import { effectiveReplicas, nextTransition, type Schedule } from '../schedule/index.js';

/** A job schedule as a deployment schedule (inside a window: 1, outside: 0), so the agent's one schedule evaluation serves both. */
function asDeploymentSchedule(s: JobSchedule): Schedule {
  return { timezone: s.timezone, windows: s.windows.map((w) => ({ ...w, replicas: { min: 1, max: 1 } })), outside: { min: 0, max: 0 } };
}

export interface WindowState {
  open: boolean;
  /** When the window opens (closed now) or closes (open now); null: never within a week. */
  next: Date | null;
}

/** Whether a job may start at `now` under its schedule (no schedule: always), evaluated in the schedule's timezone. */
export function jobWindow(schedule: JobSchedule | undefined, now: Date): WindowState {
  if (!schedule) return { open: true, next: null };
  const s = asDeploymentSchedule(schedule);
  return { open: effectiveReplicas({ replicas: { min: 1, max: 1 }, schedule: s }, now).max > 0, next: nextTransition(s, now) };
}

/** "2026-11-29 22:00 Europe/Paris (2026-11-29T21:00:00.000Z)": the local wall clock and the instant. */
export function describeInstant(at: Date, timezone: string): string {
  const local = new Intl.DateTimeFormat('sv-SE', { timeZone: timezone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(at);
  return `${local} ${timezone} (${at.toISOString()})`;
}
