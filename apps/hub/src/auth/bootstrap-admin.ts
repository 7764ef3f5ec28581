import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { DataSource } from 'typeorm';
import { hashSecret, newSecret, secretPrefix } from '../common/secrets.js';
import { ApiTokenEntity } from '../database/entities/api-token.entity.js';
import { AuditEventEntity } from '../database/entities/audit-event.entity.js';

export const BOOTSTRAP_TOKEN_NAME = 'bootstrap-admin';

/**
 * The first admin token: FLOTILLA_ADMIN_TOKEN if set, else one generated once
 * into `<home>/admin-token` (mode 0600). Only its hash is stored. Returns
 * where the token can be found, for the start banner.
 */
export async function ensureBootstrapAdmin(ds: DataSource, home: string, fromEnv: string | null): Promise<{ location: string }> {
  let secret: string;
  let location: string;
  if (fromEnv) {
    secret = fromEnv;
    location = 'FLOTILLA_ADMIN_TOKEN';
  } else {
    location = path.join(home, 'admin-token');
    try {
      secret = (await readFile(location, 'utf8')).trim();
    } catch {
      // Rotated (`flotilla tokens rotate`): the new secret was shown once and the file removed; it is not written again.
      if (await ds.getRepository(ApiTokenEntity).exists({ where: { name: BOOTSTRAP_TOKEN_NAME } })) {
        return { location: `rotated: the token "${BOOTSTRAP_TOKEN_NAME}" was shown once by \`flotilla tokens rotate\` (FLOTILLA_ADMIN_TOKEN sets a new one)` };
      }
      secret = newSecret('flt');
      await writeFile(location, secret + '\n', { mode: 0o600, flag: 'wx' });
    }
  }
  const hash = hashSecret(secret);
  await ds.transaction(async (em) => {
    const existing = await em.findOne(ApiTokenEntity, { where: { name: BOOTSTRAP_TOKEN_NAME } });
    if (existing?.tokenHash === hash) return;
    if (existing) await em.update(ApiTokenEntity, { id: existing.id }, { tokenHash: hash, tokenPrefix: secretPrefix(secret), role: 'admin' });
    else
      await em.insert(ApiTokenEntity, {
        name: BOOTSTRAP_TOKEN_NAME,
        role: 'admin',
        tokenHash: hash,
        tokenPrefix: secretPrefix(secret),
        createdBy: 'system',
      });
    await em.insert(AuditEventEntity, {
      actor: 'system',
      action: existing ? 'api-token.rotate' : 'api-token.create',
      target: `api-token/${BOOTSTRAP_TOKEN_NAME}`,
      details: { source: location },
    });
  });
  return { location };
}
