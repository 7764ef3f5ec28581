import { Controller, Get, Inject, Param } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { z } from 'zod';
import { PageQuerySchema } from '../common/pagination.js';
import { ZodQuery } from '../common/zod.js';
import { ApplyReports } from './apply-reports.js';

@ApiTags('policy')
@ApiBearerAuth()
@Controller('api/v1/apply-reports')
export class ApplyReportsController {
  constructor(@Inject(ApplyReports) private readonly reports: ApplyReports) {}

  @Get(':id')
  @ApiOperation({ summary: 'A page of the per-spoke diff of an apply or delete that touched more spokes than its answer lists' })
  async page(@Param('id') id: string, @ZodQuery(PageQuerySchema) q: z.infer<typeof PageQuerySchema>) {
    return this.reports.page(id, q.cursor, q.limit);
  }
}
