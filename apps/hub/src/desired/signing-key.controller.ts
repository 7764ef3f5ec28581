import { Controller, Get, HttpCode, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Ctx, RequireRole, type RequestContext } from '../auth/principal.js';
import { RotateSigningKey, type SigningKeyView } from './rotate-signing-key.js';

@ApiTags('signing-key')
@ApiBearerAuth()
@Controller('api/v1/signing-key')
export class SigningKeyController {
  constructor(private readonly rotation: RotateSigningKey) {}

  @Get()
  @ApiOperation({ summary: 'The hub signing key (public half and fingerprint) and how often it was rotated' })
  show(): Promise<SigningKeyView> {
    return this.rotation.view();
  }

  @Post('rotate')
  @HttpCode(200)
  @RequireRole('admin')
  @ApiOperation({
    summary: 'Rotate the hub signing key: the new key is announced under the old one, agents follow without enrolling again, then refuse the old key',
  })
  rotate(@Ctx() ctx: RequestContext): Promise<SigningKeyView> {
    return this.rotation.execute(ctx.principal.actor, ctx.requestId);
  }
}
