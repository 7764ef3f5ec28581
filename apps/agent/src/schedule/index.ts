export { effectiveReplicas, nextTransition, type EffectiveReplicas, type Schedule } from './schedule.js';
export { ScheduleError, WEEKDAYS, type Weekday } from './zoned-clock.js';
