import { Controller, Get, Inject, Res } from '@nestjs/common';
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

@ApiTags('health')
@Controller()
@Public()
export class HealthController {
  constructor(
    private readonly ds: DataSource,
    @Inject(READINESS_CHECKS) private readonly checks: ReadinessCheck[],
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
    results.database = await this.ds.query('SELECT 1').then(
      () => true,
      () => false,
    );
    for (const c of this.checks) results[c.name] = await c.check().catch(() => false);
    const ready = Object.values(results).every(Boolean);
    res.status(ready ? 200 : 503);
    return { status: ready ? 'ready' : 'not ready', checks: results };
  }
}
