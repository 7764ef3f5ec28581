import pg from 'pg';
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';

/** Advisory-lock key of the hub leadership ("flotlead"); distinct from the render lock. */
export const LEADER_LOCK = 0x666c6c64;

/**
 * Work that must run in exactly one hub of a cluster: the controllers,
 * git sync, rollouts. Registered with the LeaderElector, started when this
 * hub takes the lead and stopped (awaited) when it loses it. `start` may be
 * called again after `stop`.
 */
export interface SingletonWork {
  readonly name: string;
  start(): void | Promise<void>;
  stop(): Promise<void>;
}

export interface LeaderInfo {
  hubId: string;
  apiUrl: string | null;
  epoch: number;
  acquiredAt: string;
}

export interface LeaderElectorOptions {
  databaseUrl: string;
  hubId: string;
  apiUrl?: string | null;
  log: Logger;
  registry?: Registry;
  /** How often a follower tries to take the lead, and the leader checks its lock session. */
  pollMs?: number;
  /** A leader whose lock session has not answered for this long steps down. */
  heartbeatTimeoutMs?: number;
  /**
   * Postgres ends a lock session silent for this long (idle_session_timeout),
   * freeing the lock when the leader is cut off rather than dead. Must exceed
   * heartbeatTimeoutMs so the old leader has stopped before anyone can lead.
   */
  idleSessionTimeoutMs?: number;
}

/**
 * Elects one leading hub among the replicas that share a Postgres.
 *
 * Exclusion is a session-level advisory lock held on a dedicated connection
 * (not the pool): Postgres frees it the moment that session ends, so a
 * SIGKILLed leader is replaced at the next poll (about a second), with no
 * lease to wait out and no clock to trust. A lease row would need its TTL to
 * expire first and is only as safe as the clocks and renew loop behind it.
 * The risks of a session lock are the cut-off leader (its session lingers
 * while it may still publish) and connection poolers; the first is bounded
 * here by a heartbeat (the leader steps down when its session does not answer
 * within heartbeatTimeoutMs) and by idle_session_timeout on the lock session
 * (the server frees a silent session after idleSessionTimeoutMs, which is
 * longer); the second is documented (point DATABASE_URL at Postgres or a
 * session-mode pooler).
 *
 * Each takeover bumps the epoch in `hub_leader` (a fencing token); the leader
 * renews that row on each heartbeat only while its epoch is current, and
 * steps down when it is not. Singleton work checks `isLeader` before
 * anything visible outside Postgres (publishing), which is true only while the
 * last heartbeat is fresher than heartbeatTimeoutMs.
 */
export class LeaderElector {
  private readonly works: SingletonWork[] = [];
  private client: pg.Client | null = null;
  private leading: { epoch: number; since: number } | null = null;
  private lastConfirmedAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private transition: Promise<void> = Promise.resolve();
  private readonly listeners: Array<(leading: boolean) => void> = [];
  private readonly pollMs: number;
  private readonly heartbeatTimeoutMs: number;
  private readonly idleSessionTimeoutMs: number;
  private readonly gauge: Gauge | null;

  constructor(private readonly o: LeaderElectorOptions) {
    this.pollMs = o.pollMs ?? 1_000;
    this.heartbeatTimeoutMs = o.heartbeatTimeoutMs ?? 5_000;
    this.idleSessionTimeoutMs = o.idleSessionTimeoutMs ?? 8_000;
    this.gauge = o.registry
      ? new Gauge({ name: 'flotilla_hub_leader', help: '1 while this hub is the elected leader (runs the controllers, git sync, rollouts), 0 otherwise', labelNames: ['hub'] as const, registers: [o.registry] })
      : null;
    this.gauge?.set({ hub: o.hubId }, 0);
  }

  get hubId(): string {
    return this.o.hubId;
  }

  /** The API URL recorded with the leadership (known only once the API listens). */
  setApiUrl(url: string): void {
    this.o.apiUrl = url;
  }

  /** True while this hub holds the lock and its session answered within the heartbeat timeout. */
  get isLeader(): boolean {
    return this.leading !== null && Date.now() - this.lastConfirmedAt < this.heartbeatTimeoutMs;
  }

  get epoch(): number | null {
    return this.leading?.epoch ?? null;
  }

  /** Puts work under the leadership: started now if this hub leads, and on every takeover. */
  register(work: SingletonWork): void {
    this.works.push(work);
    if (this.leading) this.transition = this.transition.then(() => this.startWork(work));
  }

  onChange(listener: (leading: boolean) => void): void {
    this.listeners.push(listener);
  }

  /** First attempt now (a lone hub leads before start returns), then every pollMs. */
  async start(): Promise<void> {
    await this.tick();
    this.schedule();
  }

  /** Who leads, as the table says (any hub can answer). */
  async currentLeader(query: (sql: string) => Promise<unknown[]>): Promise<LeaderInfo | null> {
    const rows = (await query(`SELECT hub_id, api_url, epoch, acquired_at FROM hub_leader WHERE name = 'hub'`)) as {
      hub_id: string;
      api_url: string | null;
      epoch: string;
      acquired_at: Date;
    }[];
    const r = rows[0];
    return r ? { hubId: r.hub_id, apiUrl: r.api_url, epoch: Number(r.epoch), acquiredAt: new Date(r.acquired_at).toISOString() } : null;
  }

  /** Stops the singleton work, then releases the lock (the next hub takes over at its next poll). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.transition;
    await this.stepDown('stopping');
    await this.closeClient();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.tick().finally(() => this.schedule());
    }, this.pollMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    try {
      const client = await this.connect();
      if (this.leading) await this.heartbeat(client);
      else await this.tryAcquire(client);
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'leader election: lock session failed');
      await this.stepDown('lock session failed');
      await this.closeClient();
    }
  }

  private async connect(): Promise<pg.Client> {
    if (this.client) return this.client;
    const client = new pg.Client({
      connectionString: this.o.databaseUrl,
      keepAlive: true,
      application_name: `flotilla-hub-leader ${this.o.hubId}`.slice(0, 63),
      connectionTimeoutMillis: this.heartbeatTimeoutMs,
    });
    client.on('error', (err) => {
      this.o.log.warn({ err: err.message }, 'leader election: lock session error');
      if (this.client === client) {
        this.client = null;
        void this.stepDown('lock session lost');
        client.end().catch(() => undefined);
      }
    });
    await client.connect();
    // The server ends this session if it falls silent (a cut-off leader), freeing the lock.
    await client.query(`SET idle_session_timeout = ${Math.round(this.idleSessionTimeoutMs)}`).catch(() => undefined);
    this.client = client;
    return client;
  }

  private async closeClient(): Promise<void> {
    const c = this.client;
    this.client = null;
    if (c) await c.end().catch(() => undefined);
  }

  private async tryAcquire(client: pg.Client): Promise<void> {
    const got = await withTimeout(client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [LEADER_LOCK]), this.heartbeatTimeoutMs);
    if (!got.rows[0]?.ok) return;
    const row = await withTimeout(
      client.query<{ epoch: string }>(
        `INSERT INTO hub_leader (name, hub_id, api_url, epoch, acquired_at, renewed_at) VALUES ('hub', $1, $2, 1, now(), now())
         ON CONFLICT (name) DO UPDATE SET hub_id = EXCLUDED.hub_id, api_url = EXCLUDED.api_url, epoch = hub_leader.epoch + 1,
           acquired_at = now(), renewed_at = now()
         RETURNING epoch`,
        [this.o.hubId, this.o.apiUrl ?? null],
      ),
      this.heartbeatTimeoutMs,
    );
    const epoch = Number(row.rows[0]?.epoch);
    this.leading = { epoch, since: Date.now() };
    this.lastConfirmedAt = Date.now();
    this.gauge?.set({ hub: this.o.hubId }, 1);
    this.o.log.info({ hubId: this.o.hubId, epoch }, 'this hub now leads; starting singleton work');
    for (const l of this.listeners) l(true);
    const works = [...this.works];
    this.transition = this.transition.then(async () => {
      for (const w of works) await this.startWork(w);
    });
    await this.transition;
  }

  private async heartbeat(client: pg.Client): Promise<void> {
    const epoch = this.leading?.epoch;
    const res = await withTimeout(
      client.query(`UPDATE hub_leader SET renewed_at = now(), api_url = $3 WHERE name = 'hub' AND epoch = $1 AND hub_id = $2`, [epoch, this.o.hubId, this.o.apiUrl ?? null]),
      this.heartbeatTimeoutMs,
    );
    if (res.rowCount !== 1) {
      // Someone else took over (this session's lock must be gone): fenced off.
      await this.stepDown(`fenced: epoch ${epoch} is no longer current`);
      await this.closeClient();
      return;
    }
    this.lastConfirmedAt = Date.now();
  }

  private async startWork(w: SingletonWork): Promise<void> {
    try {
      await w.start();
    } catch (err) {
      this.o.log.error({ work: w.name, err: (err as Error).message }, 'singleton work failed to start');
    }
  }

  private async stepDown(why: string): Promise<void> {
    if (!this.leading) return;
    const epoch = this.leading.epoch;
    this.leading = null;
    this.gauge?.set({ hub: this.o.hubId }, 0);
    this.o.log.warn({ hubId: this.o.hubId, epoch, why }, 'this hub no longer leads; stopping singleton work');
    for (const l of this.listeners) l(false);
    const works = [...this.works].reverse();
    this.transition = this.transition.then(async () => {
      for (const w of works) {
        await w.stop().catch((err: Error) => this.o.log.error({ work: w.name, err: err.message }, 'singleton work failed to stop'));
      }
    });
    await this.transition;
    // Release the lock only when nothing of ours runs any more (a clean stop; a dead session released it already).
    const c = this.client;
    if (c && why === 'stopping') await withTimeout(c.query('SELECT pg_advisory_unlock($1)', [LEADER_LOCK]), this.heartbeatTimeoutMs).catch(() => undefined);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
