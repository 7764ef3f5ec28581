import type { Logger } from 'pino';
import type { HubConfig } from '../../../hub/src/config/config.js';
import type { HubHandle } from '../../../hub/src/hub.js';

/** The agent beside the hub (like k3s's): enrolled once into <home>/local-agent. Filled in with the protocol. */
export async function startLocalAgent(_hub: HubHandle, _config: HubConfig, log: Logger): Promise<() => Promise<void>> {
  log.warn('the local agent is not available in this build');
  return async () => {};
}
