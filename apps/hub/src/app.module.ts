import { type DynamicModule, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { AuditEventsController } from './audit/audit-events.controller.js';
import { AuditService } from './audit/audit.service.js';
import { AuthGuard } from './auth/auth.guard.js';
import { FailedAuthLimiter } from './auth/failed-auth-limiter.js';
import { HUB_CONFIG, type HubConfig } from './config/config.js';
import type { HubSigningKey } from './desired/signing-key.js';
import { AGENT_MQTT_URL, type AgentMqttUrl, EnrollController, SIGNING_KEY } from './enrollment/enroll.controller.js';
import { EnrollmentTokensController } from './enrollment/enrollment-tokens.controller.js';
import { HealthController, READINESS_CHECKS, type ReadinessCheck } from './health/health.controller.js';
import { ModelsController } from './models/models.controller.js';
import { ApplyController } from './policy/apply.controller.js';
import { ApplyReportsController } from './policy/apply-reports.controller.js';
import { ApplyPolicy } from './policy/apply-policy.js';
import { DeletePolicyController } from './policy/delete-policy.controller.js';
import { VersionController } from './version/version.controller.js';
import { PolicyQueries } from './policy/policy-queries.js';
import { DeploymentsController, FineTuneJobsController, PlacementsController, PolicyObjectsController } from './policy/policy-views.controller.js';
import { GitSourcesController } from './git/git-sources.controller.js';
import { GitSyncer } from './git/git-syncer.js';
import { DataSource as TypeOrmDataSource } from 'typeorm';
import { SpokesController } from './spokes/spokes.controller.js';
import { ApiTokens } from './tokens/api-tokens.js';
import { ApiTokensController } from './tokens/api-tokens.controller.js';

export interface HubModuleOptions {
  config: HubConfig;
  dataSource: TypeOrmDataSource;
  signingKey: HubSigningKey;
  agentMqttUrl: AgentMqttUrl;
  readiness: ReadinessCheck[];
  /** Use cases and controller triggers built by the bootstrap (hub.ts), shared with ingest. */
  useCases: DynamicModule['providers'];
  extraProviders?: DynamicModule['providers'];
  extraControllers?: DynamicModule['controllers'];
}

/** The hub's HTTP application, assembled around resources the bootstrap owns (database, broker, keys). */
@Module({})
export class HubModule {
  static forRoot(o: HubModuleOptions): DynamicModule {
    return {
      module: HubModule,
      controllers: [
        HealthController,
        ApiTokensController,
        EnrollmentTokensController,
        EnrollController,
        SpokesController,
        ModelsController,
        AuditEventsController,
        ApplyController,
        PolicyObjectsController,
        PlacementsController,
        DeploymentsController,
        FineTuneJobsController,
        GitSourcesController,
        DeletePolicyController, VersionController,
        ApplyReportsController,
        ...(o.extraControllers ?? []),
      ],
      providers: [
        // The bootstrap owns the DataSource (it must outlive the HTTP app to flush ingest at shutdown).
        { provide: TypeOrmDataSource, useValue: o.dataSource },
        { provide: HUB_CONFIG, useValue: o.config },
        { provide: SIGNING_KEY, useValue: o.signingKey },
        { provide: AGENT_MQTT_URL, useValue: o.agentMqttUrl },
        { provide: READINESS_CHECKS, useValue: o.readiness },
        { provide: FailedAuthLimiter, useValue: new FailedAuthLimiter() },
        AuditService,
        ApiTokens,
        ...(o.useCases ?? []),
        {
          provide: PolicyQueries,
          inject: [TypeOrmDataSource],
          useFactory: (ds: TypeOrmDataSource) => new PolicyQueries(ds, o.config.telemetryIntervalSeconds),
        },
        {
          // Started by startHub once the API listens (hub.ts), stopped before the database closes.
          provide: GitSyncer,
          inject: [TypeOrmDataSource, ApplyPolicy, AuditService],
          useFactory: (ds: TypeOrmDataSource, applier: ApplyPolicy, audit: AuditService) => new GitSyncer(ds, applier, audit, { home: o.config.home }),
        },
        { provide: APP_GUARD, useClass: AuthGuard },
        ...(o.extraProviders ?? []),
      ],
    };
  }
}
