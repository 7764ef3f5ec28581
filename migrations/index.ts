import { Initial1763700000000 } from './1763700000000-initial.js';
import { TruthfulStatus1764400000000 } from './1764400000000-truthful-status.js';
import { Rollouts1764417140000 } from './1764417140000-rollouts.js';
import { HubLeader1764417150000 } from './1764417150000-hub-leader.js';
import { SpokeLocation1764417170000 } from './1764417170000-spoke-location.js';
import { ApplyReports1764450000000 } from './1764450000000-apply-reports.js';
import { SecurityHardening1764471200000 } from './1764471200000-security-hardening.js';
import { SpokePromotions1764486000000 } from './1764486000000-spoke-promotions.js';
import { IncrementalRender1764500000000 } from './1764500000000-incremental-render.js';

/** Every migration, oldest first. The schema changes only through these. */
export const MIGRATIONS = [
  Initial1763700000000,
  TruthfulStatus1764400000000,
  Rollouts1764417140000,
  HubLeader1764417150000,
  SpokeLocation1764417170000,
  ApplyReports1764450000000,
  SecurityHardening1764471200000,
  SpokePromotions1764486000000,
  IncrementalRender1764500000000,
];
