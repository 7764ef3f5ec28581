import { Controller, Get, Header, Inject } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { Public } from '../auth/principal.js';
import { FleetMetrics } from './fleet-metrics.js';
import { HubMetrics } from './hub-metrics.js';

/** Prometheus exposition of the hub and fleet metrics. */
@ApiTags('health')
@Controller('metrics')
@Public()
export class MetricsController {
  constructor(
    @Inject(HubMetrics) private readonly metrics: HubMetrics,
    @Inject(FleetMetrics) private readonly fleet: FleetMetrics,
  ) {}

  @Get()
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  @ApiOperation({ summary: 'Prometheus metrics' })
  async scrape(): Promise<string> {
    await this.fleet.update();
    return this.metrics.registry.metrics();
  }
}
