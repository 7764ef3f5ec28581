import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import type { DataSource } from 'typeorm';
import { HubModule } from './app.module.js';
import { ensureBootstrapAdmin } from './auth/bootstrap-admin.js';
import { BrokerAuthority } from './broker/broker-authority.js';
import { type BrokerProvisioner, embeddedBrokerProvisioner } from './broker/broker-provisioner.js';
import { MosquittoDynsecProvisioner } from './broker/mosquitto-dynsec.js';
import { type EmbeddedBroker, startEmbeddedBroker } from './broker/embedded-broker.js';
import { assertPortFree } from './common/ports.js';
import type { HubConfig } from './config/config.js';
import { createDataSource, runMigrations } from './database/data-source.js';
import { type EmbeddedDatabase, startEmbeddedPostgres } from './database/embedded-postgres.js';
import { loadSigningKey } from './desired/signing-key.js';
import { HttpErrorFilter } from './errors/http-exception.filter.js';
import { NestPinoLogger } from './logger.js';
import { DesiredStateService } from './desired/desired-state.service.js';
import { GitSyncer } from './git/git-syncer.js';
import { createIngestServer } from './ingest/ingest.js';
import { SpokeStateWriter } from './ingest/spoke-state-writer.js';
import { FleetMetrics } from './metrics/fleet-metrics.js';
import { HubMetrics } from './metrics/hub-metrics.js';
import { MetricsController } from './metrics/metrics.controller.js';
import { HubPublisher, type MqttEndpoint } from './mqtt/hub-publisher.js';
import { serveOpenApi } from './openapi/openapi-document.js';
import { FleetEvents } from './spokes/fleet-events.js';
import { presenceTopic } from '@flotilla/contracts';

export interface HubHandle {
  apiUrl: string;
  /** URL agents use to reach the broker from this machine. */
  mqttUrl: string;
  mqttPort: number | null;
  adminTokenLocation: string;
  dataSource: DataSource;
  app: INestApplication;
  desired: DesiredStateService;
  metrics: HubMetrics;
  /** The hub's own broker connection (diagnostics, tests). */
  publisher: HubPublisher;
  /** Writes pending spoke state now (tests, shutdown). */
  flushIngest(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts the hub: database (embedded unless DATABASE_URL), migrations,
 * signing key, bootstrap admin token, broker (embedded unless MQTT_URL), and
 * the HTTP API. `stop()` undoes it in reverse order.
 */
export async function startHub(config: HubConfig, log: Logger): Promise<HubHandle> {
  await mkdir(config.home, { recursive: true, mode: 0o700 });
  // Fail fast, before starting Postgres, when a port we must bind is taken.
  if (config.apiPort !== 0) await assertPortFree(config.apiHost, config.apiPort, 'FLOTILLA_API_PORT', 'admin API');
  if (!config.mqttUrl && config.mqttPort !== 0) {
    await assertPortFree(config.mqttHost, config.mqttPort, 'FLOTILLA_MQTT_PORT', 'embedded MQTT broker');
  }
  const cleanups: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (err) {
        log.error({ err }, 'error while stopping');
      }
    }
  };
  try {
    let databaseUrl = config.databaseUrl;
    if (!databaseUrl) {
      const pgLog = log.child({ component: 'embedded-postgres' });
      const db: EmbeddedDatabase = await startEmbeddedPostgres(config.home, (m) => pgLog.debug(m));
      cleanups.push(() => db.stop());
      databaseUrl = db.url;
      log.info({ port: db.port, dataDir: `${config.home}/postgres` }, 'embedded Postgres started');
    }
    const ds = createDataSource(databaseUrl);
    await ds.initialize();
    cleanups.push(() => ds.destroy());
    const ran = await runMigrations(ds);
    if (ran.length) log.info({ migrations: ran }, 'migrations applied');

    const signingKey = await loadSigningKey(config.home, config.signingKeyFile);
    const admin = await ensureBootstrapAdmin(ds, config.home, config.adminToken);

    const hubUsername = 'flotilla-hub';
    const hubPassword = config.mqttPassword ?? randomBytes(24).toString('base64url');
    let broker: EmbeddedBroker | null = null;
    let mqttPort: number | null = null;
    if (!config.mqttUrl) {
      broker = await startEmbeddedBroker({
        host: config.mqttHost,
        port: config.mqttPort,
        authority: new BrokerAuthority(ds, hubUsername, hubPassword),
        log: log.child({ component: 'broker' }),
      });
      const b = broker;
      cleanups.push(() => b.close());
      mqttPort = broker.port;
      log.info({ port: broker.port }, 'embedded MQTT broker listening');
    }
    const agentMqttUrl = (apiHostname: string) => config.mqttUrl ?? `mqtt://${apiHostname || '127.0.0.1'}:${mqttPort}`;
    const endpoint: MqttEndpoint = config.mqttUrl
      ? { url: config.mqttUrl, username: config.mqttUsername ?? hubUsername, password: hubPassword }
      : { url: `mqtt://127.0.0.1:${mqttPort}`, username: hubUsername, password: hubPassword };

    let provisioner: BrokerProvisioner = embeddedBrokerProvisioner;
    if (config.brokerAuth === 'mosquitto-dynsec' && config.mqttUrl) {
      const dynsec = new MosquittoDynsecProvisioner({ url: config.mqttUrl, username: endpoint.username, password: endpoint.password, log: log.child({ component: 'dynsec' }) });
      cleanups.push(() => dynsec.close());
      // Before the publisher and ingest connect: granting a role ends that user's sessions.
      await dynsec.ensureHubRole(endpoint.username);
      provisioner = dynsec;
    }

    const metrics = new HubMetrics();
    const publisher = new HubPublisher(endpoint, log.child({ component: 'publisher' }), metrics, broker ? broker.publish : undefined);
    cleanups.push(() => publisher.close());
    await publisher.waitConnected();
    const desired = new DesiredStateService(ds, publisher, signingKey, metrics, log.child({ component: 'desired' }), config.telemetryIntervalSeconds);
    const refresh = () =>
      desired.refresh().catch((err: Error) => {
        log.error({ err }, 'desired state refresh failed');
      });
    const writer = new SpokeStateWriter(ds, metrics, log.child({ component: 'ingest' }), async (rows) => {
      let capacityChanged = false;
      for (const r of rows) {
        capacityChanged ||= r.capacityChanged;
        // Retained messages can be lost (broker restart); Postgres is the truth, so publish again.
        if (r.cameOnline) await desired.republish(r.name, 'online', 0);
        else if (r.reportedStatus && r.observedGeneration < r.desiredGeneration) await desired.republish(r.name, 'behind');
      }
      if (capacityChanged) void refresh();
    });
    cleanups.push(() => writer.close());

    const fleetEvents = new FleetEvents();
    fleetEvents.on(async (change) => {
      if (change.type === 'spoke-enrolled') await provisioner.provisionSpoke(change.spoke, change.mqttUsername, change.mqttPassword);
      if (change.type === 'spokes-changed' || change.type === 'policy-changed') await refresh();
      if (change.type === 'spoke-revoked') {
        await provisioner.revokeSpoke(change.spoke, change.mqttUsername);
        broker?.disconnect(change.spoke);
        await desired.clear(change.spoke);
        await publisher.publish(presenceTopic(change.spoke), '', { retain: true });
      }
    });
    await refresh();

    const app = await NestFactory.create<NestExpressApplication>(
      HubModule.forRoot({
        config,
        dataSource: ds,
        signingKey,
        agentMqttUrl,
        fleetEvents,
        readiness: [{ name: 'broker', check: async () => publisher.connected }],
        extraControllers: [MetricsController],
        extraProviders: [
          { provide: HubMetrics, useValue: metrics },
          { provide: FleetMetrics, useValue: new FleetMetrics(ds, metrics.registry, config.telemetryIntervalSeconds) },
        ],
      }),
      { logger: new NestPinoLogger(log.child({ component: 'nest' })), bodyParser: false, abortOnError: false },
    );
    app.set('trust proxy', 'loopback');
    app.use(
      pinoHttp({
        logger: log.child({ component: 'http' }),
        genReqId: (req, res) => {
          const given = req.headers['x-request-id'];
          const id = typeof given === 'string' && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
          res.setHeader('X-Request-Id', id);
          return id;
        },
        autoLogging: { ignore: (req) => req.url === '/healthz' || req.url === '/readyz' || req.url === '/metrics' },
        customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info'),
      }),
    );
    app.useBodyParser('json', { limit: '1mb' });
    app.useBodyParser('text', { type: ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/plain'], limit: '4mb' });
    app.useGlobalFilters(new HttpErrorFilter(log.child({ component: 'http' })));
    serveOpenApi(app, log.child({ component: 'openapi' }));
    app.connectMicroservice(
      {
        strategy: createIngestServer({
          endpoint,
          sharedSubscriptions: config.brokerAuth !== 'embedded',
          writer,
          metrics,
          log: log.child({ component: 'ingest' }),
        }),
      },
      { inheritAppConfig: false },
    );
    await app.startAllMicroservices();
    await app.listen(config.apiPort, config.apiHost);
    const server = app.getHttpServer() as Server;
    // Keep-alive sockets must not hold a stop hostage.
    cleanups.push(async () => {
      server.closeIdleConnections?.();
      await app.close();
    });
    // Git sources are followed once the API is up; stopped (in-flight fetches aborted) before the app closes.
    const gitSyncer = app.get(GitSyncer);
    gitSyncer.start(log.child({ component: 'git' }));
    cleanups.push(() => gitSyncer.stop());
    // First of all at stop: let the embedded broker deliver what it queued (see drain()).
    if (broker) {
      const b = broker;
      const brokerLog = log.child({ component: 'broker' });
      cleanups.push(async () => {
        if (!(await b.drain(3_000))) brokerLog.warn('the broker still had messages queued after 3 s; stopping anyway');
      });
    }
    const port = (server.address() as AddressInfo).port;
    const shownHost = config.apiHost === '0.0.0.0' || config.apiHost === '::' ? '127.0.0.1' : config.apiHost;
    const apiUrl = config.publicUrl ?? `http://${shownHost}:${port}`;
    return {
      apiUrl,
      mqttUrl: agentMqttUrl(shownHost),
      mqttPort,
      adminTokenLocation: admin.location,
      dataSource: ds,
      app,
      desired,
      metrics,
      publisher,
      flushIngest: () => writer.flush(),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
