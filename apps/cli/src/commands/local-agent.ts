import path from 'node:path';
import type { Logger } from 'pino';
import { EnrollError, enroll, hasCredentials, runAgent } from '../../../agent/src/index.js';
import { hashSecret, newSecret, secretPrefix } from '../../../hub/src/common/secrets.js';
import type { HubConfig } from '../../../hub/src/config/config.js';
import { AuditEventEntity } from '../../../hub/src/database/entities/audit-event.entity.js';
import { EnrollmentTokenEntity } from '../../../hub/src/database/entities/enrollment-token.entity.js';
import type { HubHandle } from '../../../hub/src/hub.js';
import { createRuntime } from './runtimes.js';

export const LOCAL_AGENT_NAME = 'local';

/**
 * The agent beside the hub, as k3s runs one beside its server: enrolled once
 * (through the real enrolment endpoint, with a single-use token minted
 * here) into `<home>/local-agent`, then run with the process runtime.
 * Returns its stop function.
 */
export async function startLocalAgent(hub: HubHandle, config: HubConfig, log: Logger): Promise<() => Promise<void>> {
  const stateDir = path.join(config.home, 'local-agent');
  const agentLog = log.child({ component: 'local-agent' });
  if (!(await hasCredentials(stateDir))) {
    const token = newSecret('fle');
    await hub.dataSource.transaction(async (em) => {
      const row = em.create(EnrollmentTokenEntity, {
        tokenHash: hashSecret(token),
        tokenPrefix: secretPrefix(token),
        labels: { 'flotilla.dev/local': 'true' },
        usesTotal: 1,
        usesLeft: 1,
        expiresAt: new Date(Date.now() + 60_000),
        createdBy: 'system',
      });
      await em.save(row);
      await em.save(em.create(AuditEventEntity, { actor: 'system', action: 'enrollment-token.create', target: `enrollment-token/${row.id}`, details: { for: 'local agent' } }));
    });
    try {
      await enroll({ hubUrl: hub.apiUrl, token, name: LOCAL_AGENT_NAME, stateDir });
    } catch (err) {
      if (err instanceof EnrollError && err.code === 'HubRefused') {
        agentLog.warn(
          { err: err.message },
          `the local agent could not enrol: a spoke named "${LOCAL_AGENT_NAME}" exists without its state in ${stateDir}; delete it (DELETE /api/v1/spokes/${LOCAL_AGENT_NAME}) or start with --no-local-agent`,
        );
        return async () => {};
      }
      throw err;
    }
    agentLog.info({ stateDir }, 'local agent enrolled');
  }
  // No local /metrics: the hub's /metrics already carries this spoke's health.
  const runtime = await createRuntime('process', { spoke: LOCAL_AGENT_NAME, stateDir, log: agentLog, namespace: 'flotilla', metricsPort: null, cacheBytes: config.localAgentCacheBytes });
  const handle = await runAgent({ stateDir, runtime: runtime.runtime, logger: agentLog, ...runtime.extras });
  return async () => {
    await handle.stop();
    await runtime.close();
  };
}
