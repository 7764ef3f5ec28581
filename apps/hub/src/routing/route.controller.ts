import { Controller, Get, Inject } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ObjectNameSchema, type RouteResponse } from '@flotilla/contracts';
import { z } from 'zod';
import { ZodQuery } from '../common/zod.js';
import { RouteTable } from './route-table.js';

const coordinate = (name: 'lat' | 'lon', bound: number) =>
  z.coerce
    .number({ error: `${name} must be a number of decimal degrees` })
    .min(-bound, `${name} must be between -${bound} and ${bound}`)
    .max(bound, `${name} must be between -${bound} and ${bound}`)
    .optional()
    .describe(`caller ${name === 'lat' ? 'latitude' : 'longitude'} in decimal degrees; give lat and lon together`);

export const RouteQuerySchema = z
  .object({
    model: ObjectNameSchema.describe('the model name (as in the registry and /v2/models/NAME)'),
    version: z.string().min(1).max(128).optional().describe('only spokes serving this version'),
    lat: coordinate('lat', 90),
    lon: coordinate('lon', 180),
    region: z.string().min(1).max(63).optional().describe('only spokes labelled topology.flotilla.dev/region (else region) with this value'),
    limit: z.coerce.number().int().min(1).max(500).default(10).describe('how many spokes, best first (at most 500)'),
  })
  .strict()
  .refine((q) => (q.lat === undefined) === (q.lon === undefined), { message: 'give lat and lon together', path: ['lat'] });

/** `GET /api/v1/route`: which healthy spokes would serve a model for a caller, nearest first. */
@ApiTags('routing')
@ApiBearerAuth()
@Controller('api/v1/route')
export class RouteController {
  constructor(@Inject(RouteTable) private readonly table: RouteTable) {}

  @Get()
  @ApiOperation({
    summary:
      'Healthy spokes serving a model (online, fresh telemetry, deployment Ready and Compliant at the current generation, error ratio within its threshold), nearest first, then by load and p99 latency, each with its endpoint and the figures used; read from memory, not the fleet',
  })
  route(@ZodQuery(RouteQuerySchema) q: z.infer<typeof RouteQuerySchema>): RouteResponse {
    return this.table.lookup({
      model: q.model,
      version: q.version,
      near: q.lat !== undefined && q.lon !== undefined ? { lat: q.lat, lon: q.lon } : null,
      region: q.region,
      limit: q.limit,
    });
  }
}
