import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { DataSource } from 'typeorm';
import type { AuditService } from '../audit/audit.service.js';
import { BOOTSTRAP_TOKEN_NAME } from '../auth/bootstrap-admin.js';
import { hashSecret, newSecret, secretPrefix } from '../common/secrets.js';
import { ApiTokenEntity } from '../database/entities/api-token.entity.js';
import { conflict, notFound } from '../errors/domain-error.js';

/**
 * Replaces an API token's secret (the bootstrap admin token included): the
 * new secret is returned once and stored as a hash, the old one stops working
 * at once, and the change is audited. For the bootstrap token the
 * `<home>/admin-token` file, which held the old secret, is removed; a token
 * that FLOTILLA_ADMIN_TOKEN sets is refused (the variable would set it back
 * at the next start: change the variable instead).
 */
export class RotateApiToken {
  constructor(
    private readonly ds: DataSource,
    private readonly audit: AuditService,
    private readonly bootstrap: { home: string; fromEnv: boolean },
  ) {}

  async execute(name: string, actor: string, requestId: string | null): Promise<{ row: ApiTokenEntity; token: string }> {
    if (name === BOOTSTRAP_TOKEN_NAME && this.bootstrap.fromEnv) {
      throw conflict('bootstrap_token_from_env', `the "${BOOTSTRAP_TOKEN_NAME}" token is set by FLOTILLA_ADMIN_TOKEN; change that variable and restart the hub instead`, { name });
    }
    const token = newSecret('flt');
    const row = await this.ds.transaction(async (em) => {
      const existing = await em.findOne(ApiTokenEntity, { where: { name }, lock: { mode: 'pessimistic_write' } });
      if (!existing) throw notFound('API token', name);
      await em.update(ApiTokenEntity, { id: existing.id }, { tokenHash: hashSecret(token), tokenPrefix: secretPrefix(token) });
      await this.audit.record(em, {
        actor,
        action: 'api-token.rotate',
        target: `api-token/${name}`,
        before: { name, tokenPrefix: existing.tokenPrefix },
        after: { name, tokenPrefix: secretPrefix(token) },
        requestId,
      });
      return { ...existing, tokenPrefix: secretPrefix(token) };
    });
    if (name === BOOTSTRAP_TOKEN_NAME) await rm(path.join(this.bootstrap.home, 'admin-token'), { force: true });
    return { row, token };
  }
}
