import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { DataSource } from 'typeorm';
import type { HubConfig } from '../config/config.js';
import type { LeaderStatus } from '../health/health.controller.js';
import type { LeaderElector } from './leader-elector.js';

/** FLOTILLA_HUB_ID, else host, process and a random suffix: unique per process, readable in logs and /readyz. */
export function hubIdentity(config: Pick<HubConfig, 'hubId'>): string {
  if (config.hubId) return config.hubId;
  const host = os.hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 40) || 'hub';
  return `${host}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/** What /readyz says about leadership: this hub, the leader Postgres names, and whether they are the same. */
export function leaderStatus(elector: LeaderElector, ds: DataSource): LeaderStatus {
  return {
    async describe() {
      const current = await elector.currentLeader((sql) => ds.query(sql));
      return { hubId: elector.hubId, leaderHubId: current?.hubId ?? null, self: elector.isLeader, epoch: current?.epoch ?? null };
    },
  };
}
