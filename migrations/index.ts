import { Initial1763700000000 } from './1763700000000-initial.js';
import { TruthfulStatus1764400000000 } from './1764400000000-truthful-status.js';
import { Rollouts1764417140000 } from './1764417140000-rollouts.js';

/** Every migration, oldest first. The schema changes only through these. */
export const MIGRATIONS = [Initial1763700000000, TruthfulStatus1764400000000, Rollouts1764417140000];
