import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import https from 'node:https';
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
import { choosePorts } from './common/ports.js';
import type { HubConfig } from './config/config.js';
import { createDataSource, runMigrations } from './database/data-source.js';
import { type EmbeddedDatabase, startEmbeddedPostgres } from './database/embedded-postgres.js';
import { loadSigningKey } from './desired/signing-key.js';
import { HttpErrorFilter } from './errors/http-exception.filter.js';
import { NestPinoLogger, requestLogOptions } from './logger.js';
import { AuditService } from './audit/audit.service.js';
import { BrokerCredentialsReconciler } from './broker/broker-credentials.reconciler.js';
import { Controller } from './controllers/controller.js';
import { FleetTriggers } from './controllers/fleet-triggers.js';
import { DesiredStateReconciler } from './desired/desired-state.reconciler.js';
import { EnvelopePublisher } from './desired/envelope-publisher.js';
import { FleetRenderer } from './desired/fleet-renderer.js';
import { SpokeSyncReconciler } from './desired/spoke-sync.reconciler.js';
import { IssueEnrollmentToken } from './enrollment/issue-enrollment-token.js';
import { EnrollSpoke } from './enrollment/enroll-spoke.js';
import { RegisterModelVersion } from './models/register-model-version.js';
import { RegisterProducedVersions } from './finetune/register-produced-versions.js';
import { FineTunePromotionsController } from './finetune/finetune-promotions.controller.js';
import { PromoteProducedVersion } from './finetune/promote-produced-version.js';
import { PromotionOverrides } from './finetune/promotion-overrides.js';
import { PromotionStore } from './finetune/promotion-store.js';
import { PromotionReconciler } from './finetune/promotion.reconciler.js';
import { ArtifactsController } from './artifacts/artifacts.controller.js';
import { ARTIFACT_STORE } from './artifacts/artifacts.tokens.js';
import { createArtifactStore } from './artifacts/create-artifact-store.js';
import { UploadProducedArtifact } from './artifacts/upload-produced-artifact.js';
import { ApplyPolicy } from './policy/apply-policy.js';
import { ApplyReports } from './policy/apply-reports.js';
import { DeletePolicy } from './policy/delete-policy.js';
import { LabelSpoke } from './spokes/label-spoke.js';
import { RevokeSpoke } from './spokes/revoke-spoke.js';
import { SpokesRepository } from './spokes/spokes.repository.js';
import { GitSyncer } from './git/git-syncer.js';
import { IngestSubscriber } from './ingest/ingest.js';
import { AmqpIngest } from './ingest/amqp-ingest.js';
import { SpokeStateWriter } from './ingest/spoke-state-writer.js';
import { FleetMetrics } from './metrics/fleet-metrics.js';
import { HubMetrics } from './metrics/hub-metrics.js';
import { MetricsController } from './metrics/metrics.controller.js';
import { HubPublisher, type MqttEndpoint } from './mqtt/hub-publisher.js';
import { RouteTable } from './routing/route-table.js';
import { LocateSpoke } from './spokes/locate-spoke.js';
import { LeaderElector } from './leader/leader-elector.js';
import { RelayingFleetTriggers } from './leader/trigger-relay.js';
import { hubIdentity, leaderStatus } from './leader/hub-identity.js';
import { LEADER_STATUS } from './health/health.controller.js';
import { BrokerAuthHooks } from './broker/http-auth/broker-auth-hooks.js';
import { BrokerHookServer } from './broker/http-auth/broker-hook-server.js';
import { HttpAuthProvisioner } from './broker/http-auth/http-auth-provisioner.js';

/** Every controller looks at all its keys this often, whatever notifications arrived. */
const RESYNC_MS = 300_000;
import { serveOpenApi } from './openapi/openapi-document.js';
import { installBodyParsers } from './common/body-parsers.js';
import { HUB_TLS } from './enrollment/enroll.controller.js';
import { loadHubTls } from './tls/hub-tls.js';
import { RotateSigningKey, loadKeyChain, rotationCommitted } from './desired/rotate-signing-key.js';
import { SigningKeyController } from './desired/signing-key.controller.js';
import { RotateApiToken } from './tokens/rotate-api-token.js';
import { SpokeVersionDecisions } from './desired/spoke-version-decisions.js';
import { ControlRollout } from './rollouts/control-rollout.js';
import { RolloutMetrics } from './rollouts/rollout-metrics.js';
import { RolloutRevisions } from './rollouts/rollout-revisions.js';
import { RolloutStore } from './rollouts/rollout-store.js';
import { RolloutReconciler } from './rollouts/rollout.reconciler.js';
import { RolloutsController } from './rollouts/rollouts.controller.js';
import { CommandResultWriter, SendSpokeCommand, SpokeCommandReconciler, SpokeCommandStore } from './commands/spoke-commands.js';
import { SpokeCommandsController } from './commands/spoke-commands.controller.js';

/** The rollout controller looks for new and active rollouts this often (they move on telemetry, not on notifications). */
const ROLLOUT_POLL_MS = 1_000;
/** How often the promotion controller looks for runs to auto-promote (promotions in flight are polled every ROLLOUT_POLL_MS). */
const PROMOTION_RESYNC_MS = 2_000;

export interface HubHandle {
  apiUrl: string;
  /** URL agents use to reach the broker from this machine. */
  mqttUrl: string;
  mqttPort: number | null;
  /** The plain API as this machine reaches it (the local agent enrols there, whatever FLOTILLA_PUBLIC_URL says). */
  localApiUrl: string;
  /** The API over HTTPS (null with FLOTILLA_TLS=off). */
  httpsUrl: string | null;
  /** MQTT over TLS on the embedded broker (null without it). */
  mqttsUrl: string | null;
  /** The CA certificate clients pin (`--ca`, FLOTILLA_CA); null when none. */
  caFile: string | null;
  adminTokenLocation: string;
  dataSource: DataSource;
  app: INestApplication;
  /** The hub's controllers (desired state, spoke sync, broker credentials). */
  controllers: Controller[];
  /** Use cases the CLI's local-agent bootstrap calls, as the API does. */
  useCases: { issueEnrollmentToken: IssueEnrollmentToken };
  metrics: HubMetrics;
  /** The hub's own broker connection (diagnostics, tests). */
  publisher: HubPublisher;
  /** Leadership among hub replicas: singleton work runs only while `elector.isLeader`. */
  elector: LeaderElector;
  /** FLOTILLA_BROKER_AUTH=http: where the broker's auth hooks are answered (null otherwise). */
  brokerHookUrl: string | null;
  /** Settles when the hub can no longer serve (its embedded Postgres died and could not be restarted): stop it then. */
  failed: Promise<Error>;
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
  // Before starting Postgres, so that a taken port fails fast: variable, else remembered, else default or the next free one.
  config = { ...config, ...(await choosePorts(config, log)) };
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
    // Only an embedded Postgres that died and could not be restarted settles it.
    let failed: Promise<Error> = new Promise(() => undefined);
    if (!databaseUrl) {
      const db: EmbeddedDatabase = await startEmbeddedPostgres(config.home, log.child({ component: 'embedded-postgres' }));
      cleanups.push(() => db.stop());
      failed = new Promise((resolve) => db.onFailure(resolve));
      databaseUrl = db.url;
      log.info({ port: db.port, dataDir: db.dataDir }, 'embedded Postgres started');
    }
    const ds = createDataSource(databaseUrl);
    await ds.initialize();
    cleanups.push(() => ds.destroy());
    const ran = await runMigrations(ds);
    if (ran.length) log.info({ migrations: ran }, 'migrations applied');

    const tls = config.tls.enabled ? await loadHubTls(config) : null;
    const signingKey = await loadSigningKey(config.home, config.signingKeyFile, rotationCommitted(ds));
    if (!(await loadKeyChain(ds, signingKey)).ok) {
      log.warn({ key: signingKey.location }, 'the signing key is not the last one rotated to (replaced by hand?): enrolled agents refuse its envelopes until enrolled again');
    }
    const admin = await ensureBootstrapAdmin(ds, config.home, config.adminToken);

    const hubUsername = 'flotilla-hub';
    const hubPassword = config.mqttPassword ?? randomBytes(24).toString('base64url');
    let broker: EmbeddedBroker | null = null;
    let mqttPort: number | null = null;
    const metrics = new HubMetrics();
    if (!config.mqttUrl) {
      broker = await startEmbeddedBroker({
        onRefused: (reason) => metrics.brokerRefused.inc({ reason }),
        host: config.mqttHost,
        port: config.mqttPort,
        authority: new BrokerAuthority(ds, hubUsername, hubPassword),
        log: log.child({ component: 'broker' }),
        ...(tls ? { tls: { host: config.tls.host, port: config.tls.mqttsPort, cert: tls.certificatePem, key: tls.keyPem } } : {}),
      });
      const b = broker;
      cleanups.push(() => b.close());
      mqttPort = broker.port;
      log.info({ port: broker.port }, 'embedded MQTT broker listening');
    }
    const mqttsPort = broker?.tlsPort ?? null;
    // An agent that enrolled over HTTPS is sent to the TLS listener; plain MQTT only serves loopback by default.
    const agentMqttUrl = (apiHostname: string, secure = false) =>
      config.mqttUrl ?? (secure && mqttsPort ? `mqtts://${apiHostname || '127.0.0.1'}:${mqttsPort}` : `mqtt://${apiHostname || '127.0.0.1'}:${mqttPort}`);
    const endpoint: MqttEndpoint = config.mqttUrl
      ? { url: config.mqttUrl, username: config.mqttUsername ?? hubUsername, password: hubPassword, ...(tls?.caCertificatePem ? { ca: tls.caCertificatePem } : {}) }
      : { url: `mqtt://127.0.0.1:${mqttPort}`, username: hubUsername, password: hubPassword };

    let provisioner: BrokerProvisioner = embeddedBrokerProvisioner;
    if (config.brokerAuth === 'mosquitto-dynsec' && config.mqttUrl) {
      const dynsec = new MosquittoDynsecProvisioner({ url: config.mqttUrl, username: endpoint.username, password: endpoint.password, ca: endpoint.ca, log: log.child({ component: 'dynsec' }) });
      cleanups.push(() => dynsec.close());
      // Before the publisher and ingest connect: granting a role ends that user's sessions.
      await dynsec.ensureHubRole(endpoint.username);
      provisioner = dynsec;
    }

    // Before the hub's own broker connections: the broker asks these hooks about them too.
    let brokerHookUrl: string | null = null;
    if (config.brokerAuth === 'http' && config.brokerHook.secret) {
      const hooks = new BrokerAuthHooks(ds, { username: endpoint.username, password: endpoint.password }, log.child({ component: 'broker-hooks' }));
      const hookServer = new BrokerHookServer(hooks, { host: config.brokerHook.host, port: config.brokerHook.port, secret: config.brokerHook.secret }, log.child({ component: 'broker-hooks' }));
      brokerHookUrl = await hookServer.listen();
      cleanups.push(() => hookServer.close());
      // Enrolment provisions nothing (the hooks read Postgres); revocation ends the live session.
      provisioner = new HttpAuthProvisioner(hooks, { kind: config.brokerKind, adminUrl: config.brokerAdminUrl, log: log.child({ component: 'broker-sessions' }) });
      log.info({ url: brokerHookUrl }, 'answering the broker\'s HTTP auth hooks');
    }
    // Hub replicas on one Postgres elect one leader for the singleton work (controllers, git sync, rollouts).
    const elector = new LeaderElector({ databaseUrl, hubId: hubIdentity(config), apiUrl: config.publicUrl, log: log.child({ component: 'leader' }), registry: metrics.registry });
    const publisher = new HubPublisher(endpoint, log.child({ component: 'publisher' }), metrics, broker ? broker.publish : undefined);
    cleanups.push(() => publisher.close());
    await publisher.waitConnected();
    // apply -> render -> publish: the renderer stores a new generation for each spoke whose
    // payload changed; the envelope publisher signs and publishes after the commit.
    const audit = new AuditService();
    const envelopes = new EnvelopePublisher(ds, publisher, signingKey, metrics, log.child({ component: 'envelopes' }));
    // Which revision of each deployment a spoke gets: the policy's, or the previous one while a rollout holds it back.
    const rolloutStore = new RolloutStore();
    // A promoted fine-tuned version replaces, on its spoke only, the model of whatever the policy or a rollout renders there.
    const promotionStore = new PromotionStore();
    const versions = new SpokeVersionDecisions([new RolloutRevisions(rolloutStore, audit), new PromotionOverrides(promotionStore, audit)]);
    const renderer = new FleetRenderer(envelopes, metrics, log.child({ component: 'render' }), config.telemetryIntervalSeconds, versions);
    const controllerLog = log.child({ component: 'controllers' });
    const desiredReconciler = new DesiredStateReconciler(ds, renderer, envelopes);
    const desiredController = new Controller(desiredReconciler, controllerLog, metrics, RESYNC_MS);
    const spokeSync = new Controller(new SpokeSyncReconciler(ds, envelopes, config.telemetryIntervalSeconds), controllerLog, metrics, 60_000);
    const brokerCredentialsReconciler = new BrokerCredentialsReconciler(ds, provisioner, broker, publisher, envelopes, endpoint.username, log.child({ component: 'broker-credentials' }));
    const brokerCredentials = new Controller(brokerCredentialsReconciler, controllerLog, metrics, RESYNC_MS);
    const rolloutMetrics = new RolloutMetrics(ds, metrics.registry);
    const rolloutReconciler = new RolloutReconciler(ds, rolloutStore, renderer, envelopes, audit, rolloutMetrics, log.child({ component: 'rollouts' }), config.telemetryIntervalSeconds, ROLLOUT_POLL_MS);
    const rolloutController = new Controller(rolloutReconciler, controllerLog, metrics, ROLLOUT_POLL_MS);
    const commandStore = new SpokeCommandStore();
    const commandDelivery = new Controller(new SpokeCommandReconciler(ds, commandStore, publisher, config.telemetryIntervalSeconds), controllerLog, metrics, 60_000);
    const promotionReconciler = new PromotionReconciler(ds, promotionStore, renderer, envelopes, audit, log.child({ component: 'promotions' }), config.telemetryIntervalSeconds, ROLLOUT_POLL_MS);
    const promotionController = new Controller(promotionReconciler, controllerLog, metrics, PROMOTION_RESYNC_MS);
    const controllers = [desiredController, spokeSync, brokerCredentials, rolloutController, commandDelivery, promotionController];
    const triggers = new RelayingFleetTriggers(desiredController, spokeSync, brokerCredentials, elector, ds, databaseUrl, log.child({ component: 'trigger-relay' }));
    await triggers.start();
    cleanups.push(() => triggers.stop());
    // Stops the singleton work before the broker connection and the database close (cleanups run in reverse).
    cleanups.push(() => elector.stop());
    // Only the leader publishes desired state; elsewhere the spokes are handed to it.
    envelopes.gateOn({
      mayPublish: () => elector.isLeader,
      deferred: (spokes) => spokes.forEach((s) => triggers.syncSpoke(s)),
      deferredRevocation: (spoke) => triggers.spokeRevoked(spoke),
    });
    // A new leader (or a broker connection to another cluster node) publishes every current generation again.
    elector.onChange((leading) => {
      if (!leading) return;
      envelopes.forgetPublished();
      desiredReconciler.forgetFullRender(); // its first resync renders the whole fleet
    });
    publisher.onReconnect(() => {
      envelopes.forgetPublished();
      spokeSync.resyncNow();
    });
    // Routing: built from Postgres now, then re-read per spoke as ingest and renders change it.
    const routeTable = new RouteTable(ds, config.telemetryIntervalSeconds, log.child({ component: 'routing' }));
    await routeTable.start();
    cleanups.push(() => routeTable.stop());
    envelopes.onChanged((spokes) => routeTable.noteSpokes(spokes));
    // report -> compliance: ingest writes what agents report; a spoke that came online or is
    // behind is looked at by spoke sync, a capacity change may move placements.
    const writer = new SpokeStateWriter(ds, metrics, log.child({ component: 'ingest' }), async (rows) => {
      routeTable.noteSpokes(rows.map((r) => r.name));
      for (const r of rows) {
        if (r.cameOnline || (r.reportedStatus && r.acceptedGeneration < r.desiredGeneration)) triggers.syncSpoke(r.name);
        if (r.capacityChanged) triggers.renderSpokes();
      }
    });
    cleanups.push(() => writer.close());
    const register = new RegisterModelVersion(audit);
    // Fine-tuned models spokes upload (output.artifact: upload): $FLOTILLA_HOME/artifacts-store or S3.
    const artifactStore = await createArtifactStore(config);
    const producedVersions = new RegisterProducedVersions(ds, register, log.child({ component: 'finetune' }), () => triggers.renderFleet(), artifactStore);
    const issueEnrollmentToken = new IssueEnrollmentToken(ds, audit);
    const useCases = [
      { provide: FleetTriggers, useValue: triggers },
      { provide: RegisterModelVersion, useValue: register },
      { provide: ARTIFACT_STORE, useValue: artifactStore },
      { provide: UploadProducedArtifact, useValue: new UploadProducedArtifact(ds, artifactStore, audit, config.artifactMaxBytes) },
      { provide: ApplyPolicy, useValue: new ApplyPolicy(ds, audit, renderer, envelopes, register) },
      { provide: ApplyReports, useValue: new ApplyReports(ds, config.applySpokesInAnswer) },
      { provide: EnrollSpoke, useValue: new EnrollSpoke(ds, audit, provisioner, triggers) },
      { provide: RevokeSpoke, useValue: new RevokeSpoke(ds, audit, brokerCredentialsReconciler, triggers, renderer, envelopes) },
      { provide: DeletePolicy, useValue: new DeletePolicy(ds, audit, renderer, envelopes) },
      { provide: IssueEnrollmentToken, useValue: issueEnrollmentToken },
      { provide: LabelSpoke, useValue: new LabelSpoke(ds, audit, renderer, envelopes) },
      { provide: SpokesRepository, useValue: new SpokesRepository(ds) },
      { provide: RotateSigningKey, useValue: new RotateSigningKey(ds, audit, signingKey, envelopes, triggers) },
      { provide: RotateApiToken, useValue: new RotateApiToken(ds, audit, { home: config.home, fromEnv: config.adminToken !== null }) },
      { provide: RouteTable, useValue: routeTable },
      { provide: LocateSpoke, useValue: new LocateSpoke(ds, audit, (spoke) => routeTable.noteSpokes([spoke])) },
      { provide: RolloutStore, useValue: rolloutStore },
      { provide: PromotionStore, useValue: promotionStore },
      { provide: PromoteProducedVersion, useValue: new PromoteProducedVersion(ds, promotionStore, audit, promotionController) },
      { provide: SpokeCommandStore, useValue: commandStore },
      { provide: SendSpokeCommand, useValue: new SendSpokeCommand(ds, audit, commandDelivery) },
      { provide: ControlRollout, useValue: new ControlRollout(ds, rolloutStore, audit, rolloutController, rolloutMetrics) },
    ];
    // The controllers run in the leader only; elector.stop() (a cleanup) stops them before the broker connection and the database close.
    for (const c of controllers) elector.register({ name: c.name, start: () => c.start(), stop: () => c.stop() });
    await elector.start();

    const app = await NestFactory.create<NestExpressApplication>(
      HubModule.forRoot({
        config,
        dataSource: ds,
        signingKey,
        agentMqttUrl,
        useCases,
        readiness: [{ name: 'broker', check: async () => publisher.connected }],
        extraControllers: [MetricsController, SigningKeyController, RolloutsController, SpokeCommandsController, FineTunePromotionsController, ArtifactsController],
        extraProviders: [
          { provide: HubMetrics, useValue: metrics },
          { provide: HUB_TLS, useValue: { caCertificatePem: tls?.caCertificatePem ?? null } },
          { provide: FleetMetrics, useValue: new FleetMetrics(ds, metrics.registry, config.telemetryIntervalSeconds) },
          { provide: LEADER_STATUS, useValue: leaderStatus(elector, ds) },
        ],
      }),
      { logger: new NestPinoLogger(log.child({ component: 'nest' })), bodyParser: false, abortOnError: false },
    );
    // X-Forwarded-For is believed only from the proxies FLOTILLA_TRUST_PROXY names: else anyone could choose their address.
    app.set('trust proxy', config.trustProxy.length > 0 ? config.trustProxy : false);
    app.use(pinoHttp(requestLogOptions(log.child({ component: 'http' }))));
    installBodyParsers(app);
    app.useGlobalFilters(new HttpErrorFilter(log.child({ component: 'http' })));
    serveOpenApi(app, log.child({ component: 'openapi' }));
    const commandResults = new CommandResultWriter(ds, log.child({ component: 'commands' }));
    // Replicas share agent messages: `$share/...` on Mosquitto and EMQX, one queue on RabbitMQ.
    const ingest =
      config.brokerKind === 'rabbitmq' && config.amqpUrl && config.mqttUrl
        ? new AmqpIngest({ url: config.amqpUrl, username: endpoint.username, password: endpoint.password, writer, metrics, log: log.child({ component: 'ingest' }), onStatus: (s) => void producedVersions.fromStatus(s.spoke, s.jobs) })
        : new IngestSubscriber({
            endpoint,
            sharedSubscriptions: config.brokerAuth !== 'embedded',
            writer,
            metrics,
            log: log.child({ component: 'ingest' }),
            onStatus: (s) => void producedVersions.fromStatus(s.spoke, s.jobs),
            // report -> command results: an agent's CommandResult settles its command.
            onEvent: (spoke, e) => void commandResults.record(spoke, e),
          });
    cleanups.push(() => ingest.close());
    await ingest.start();
    await app.listen(config.apiPort, config.apiHost);
    const server = app.getHttpServer() as Server;
    // Keep-alive sockets must not hold a stop hostage.
    cleanups.push(async () => {
      server.closeIdleConnections?.();
      await app.close();
    });
    // Git sources are followed once the API is up; stopped (in-flight fetches aborted) before the app closes.
    const gitSyncer = app.get(GitSyncer);
    const gitLog = log.child({ component: 'git' });
    elector.register({ name: 'git-sync', start: () => gitSyncer.start(gitLog), stop: () => gitSyncer.stop() });
    cleanups.push(() => gitSyncer.stop());
    // First of all at stop: let the embedded broker deliver what it queued (see drain()).
    if (broker) {
      const b = broker;
      const brokerLog = log.child({ component: 'broker' });
      cleanups.push(async () => {
        if (!(await b.drain(3_000))) brokerLog.warn('the broker still had messages queued after 3 s; stopping anyway');
      });
    }
    let httpsUrl: string | null = null;
    if (tls) {
      // The same Express application behind a second, TLS listener.
      const secure = https.createServer({ cert: tls.certificatePem, key: tls.keyPem, minVersion: 'TLSv1.2' }, app.getHttpAdapter().getInstance());
      await new Promise<void>((resolve, reject) => {
        secure.once('error', reject);
        secure.listen(config.tls.httpsPort, config.tls.host, () => resolve());
      });
      cleanups.push(async () => {
        secure.closeIdleConnections();
        await new Promise<void>((resolve) => secure.close(() => resolve()));
      });
      const tlsHost = config.tls.host === '0.0.0.0' || config.tls.host === '::' ? '127.0.0.1' : config.tls.host;
      httpsUrl = `https://${tlsHost.includes(':') ? `[${tlsHost}]` : tlsHost}:${(secure.address() as AddressInfo).port}`;
      log.info({ url: httpsUrl, certificate: tls.source, ca: tls.caFile }, 'HTTPS API listening');
    }
    const port = (server.address() as AddressInfo).port;
    const shownHost = config.apiHost === '0.0.0.0' || config.apiHost === '::' ? '127.0.0.1' : config.apiHost;
    const apiUrl = config.publicUrl ?? `http://${shownHost}:${port}`;
    elector.setApiUrl(apiUrl);
    return {
      apiUrl,
      mqttUrl: agentMqttUrl(shownHost),
      mqttPort,
      localApiUrl: `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}`,
      httpsUrl,
      mqttsUrl: mqttsPort ? `mqtts://127.0.0.1:${mqttsPort}` : null,
      caFile: tls?.caFile ?? null,
      adminTokenLocation: admin.location,
      dataSource: ds,
      app,
      controllers,
      useCases: { issueEnrollmentToken },
      metrics,
      publisher,
      elector,
      brokerHookUrl,
      flushIngest: () => writer.flush(),
      failed,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
