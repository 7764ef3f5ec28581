import { Controller, Get } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { PROTOCOL_VERSION } from '@flotilla/contracts';
import { Public } from '../auth/principal.js';
import { FLOTILLA_VERSION } from './package-version.js';

/** What `flotilla version` shows for the hub; public, like /healthz, so a client can check compatibility before it has a token. */
@ApiTags('health')
@Controller('api/v1/version')
@Public()
export class VersionController {
  @Get()
  @ApiOperation({ summary: 'Hub version, API version and MQTT protocol version (no token needed)' })
  version() {
    return { version: FLOTILLA_VERSION, api: 'v1', protocol: PROTOCOL_VERSION };
  }
}
