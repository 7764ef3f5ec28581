import { Initial1763700000000 } from './1763700000000-initial.js';
import { TruthfulStatus1764400000000 } from './1764400000000-truthful-status.js';
import { HubLeader1764417150000 } from './1764417150000-hub-leader.js';

/** Every migration, oldest first. The schema changes only through these. */
export const MIGRATIONS = [Initial1763700000000, TruthfulStatus1764400000000, HubLeader1764417150000];
