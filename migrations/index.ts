import { Initial1763700000000 } from './1763700000000-initial.js';

/** Every migration, oldest first. The schema changes only through these. */
export const MIGRATIONS = [Initial1763700000000];
