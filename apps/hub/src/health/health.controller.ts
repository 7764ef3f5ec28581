import { Controller, Get, Inject, Optional, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { DataSource } from 'typeorm';
import { Public } from '../auth/principal.js';

/** Something whose reachability makes the hub ready (the broker connection). */
export interface ReadinessCheck {
  name: string;
  check(): Promise<boolean>;
}
export const READINESS_CHECKS = Symbol('READINESS_CHECKS');

/** Which hub leads, for /readyz (see leader/leader-elector.ts). */
export interface LeaderStatus {
  describe(): Promise<{ hubId: string; leaderHubId: string | null; self: boolean; epoch: number | null }>;
}
export const LEADER_STATUS = Symbol('LEADER_STATUS');

/** A probe must answer even when a dependency hangs rather than refuses (a stopped Postgres, a black-holed broker). */
const PROBE_TIMEOUT_MS = 2_000;

function withinProbe(check: Promise<unknown>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), PROBE_TIMEOUT_MS);
  });
  return Promise.race([check.then((ok) => ok !== false, () => false), timeout]).finally(() => clearTimeout(timer));
}

@ApiTags('health')
@Controller()
@Public()
export class HealthController {
  constructor(
    private readonly ds: DataSource,
    @Inject(READINESS_CHECKS) private readonly checks: ReadinessCheck[],
    @Optional() @Inject(LEADER_STATUS) private readonly leader?: LeaderStatus,
  ) {}

  @Get('healthz')
  @ApiOperation({ summary: 'Liveness' })
  healthz() {
    return { status: 'ok' };
  }

  @Get('readyz')
  @ApiOperation({ summary: 'Readiness: database and broker reachable' })
  async readyz(@Res({ passthrough: true }) res: Response) {
    const results: Record<string, boolean> = {};
    results.database = await withinProbe(this.ds.query('SELECT 1'));
    for (const c of this.checks) results[c.name] = await withinProbe(c.check());
    const down = Object.keys(results).filter((k) => !results[k]);
    res.status(down.length === 0 ? 200 : 503);
    let leader: Awaited<ReturnType<LeaderStatus['describe']>> | undefined;
    if (this.leader) {
      await withinProbe(
        this.leader.describe().then((d) => {
          leader = d;
        }),
      );
    }
    const extra = leader ? { leader } : {};
    return down.length === 0 ? { status: 'ready', checks: results, ...extra } : { status: 'not ready', checks: results, down, ...extra };
  }
}
