import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The first schema: spokes, tokens, model registry, policy objects, desired states, audit, git sources. */
export class Initial1763700000000 implements MigrationInterface {
  name = 'Initial1763700000000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`CREATE TABLE "api_tokens" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "name" text NOT NULL, "role" text NOT NULL, "token_hash" text NOT NULL, "token_prefix" text NOT NULL, "created_by" text NOT NULL, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "last_used_at" TIMESTAMP WITH TIME ZONE, "expires_at" TIMESTAMP WITH TIME ZONE, CONSTRAINT "PK_c587455266b5fa8dace7194caac" PRIMARY KEY ("id"))`);
    await queryRunner.query(`CREATE UNIQUE INDEX "UQ_api_tokens_name" ON "api_tokens" ("name")`);
    await queryRunner.query(`CREATE UNIQUE INDEX "UQ_api_tokens_token_hash" ON "api_tokens" ("token_hash")`);
    await queryRunner.query(`CREATE TABLE "audit_events" ("id" bigint GENERATED ALWAYS AS IDENTITY NOT NULL, "at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "actor" text NOT NULL, "action" text NOT NULL, "target" text NOT NULL, "before_digest" text, "after_digest" text, "details" jsonb NOT NULL DEFAULT '{}', "request_id" text, CONSTRAINT "PK_910f64d901a5c3e9878f0d4a407" PRIMARY KEY ("id"))`);
    await queryRunner.query(`CREATE INDEX "IDX_audit_events_at" ON "audit_events" ("at")`);
    await queryRunner.query(`CREATE INDEX "IDX_audit_events_target" ON "audit_events" ("target")`);
    await queryRunner.query(`CREATE TABLE "spokes" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "name" text NOT NULL, "labels" jsonb NOT NULL DEFAULT '{}', "capacity" jsonb, "facts" jsonb NOT NULL DEFAULT '{}', "presence" text NOT NULL DEFAULT 'offline', "session_id" text, "last_seen_at" TIMESTAMP WITH TIME ZONE, "desired_generation" integer NOT NULL DEFAULT '0', "observed_generation" integer NOT NULL DEFAULT '0', "conditions" jsonb NOT NULL DEFAULT '[]', "deployment_statuses" jsonb NOT NULL DEFAULT '[]', "job_statuses" jsonb NOT NULL DEFAULT '[]', "telemetry" jsonb, "telemetry_at" TIMESTAMP WITH TIME ZONE, "mqtt_username" text NOT NULL, "credential_hash" text, "revoked_at" TIMESTAMP WITH TIME ZONE, "enrollment_token_id" uuid, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_f4cfaba770dfcbfe42f66954a50" PRIMARY KEY ("id"))`);
    await queryRunner.query(`CREATE UNIQUE INDEX "UQ_spokes_name_active" ON "spokes" ("name") WHERE "revoked_at" IS NULL`);
    await queryRunner.query(`CREATE UNIQUE INDEX "UQ_spokes_mqtt_username" ON "spokes" ("mqtt_username")`);
    await queryRunner.query(`CREATE INDEX "IDX_spokes_labels" ON "spokes" USING GIN ("labels")`);
    await queryRunner.query(`CREATE TABLE "desired_states" ("spoke_id" uuid NOT NULL, "generation" integer NOT NULL, "payload" jsonb NOT NULL, "hash" text NOT NULL, "issued_at" TIMESTAMP WITH TIME ZONE NOT NULL, "published_at" TIMESTAMP WITH TIME ZONE, "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_4322add9c38ceedf0d72c00d164" PRIMARY KEY ("spoke_id"))`);
    await queryRunner.query(`CREATE TABLE "enrollment_tokens" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "token_hash" text NOT NULL, "token_prefix" text NOT NULL, "labels" jsonb NOT NULL DEFAULT '{}', "uses_total" integer NOT NULL, "uses_left" integer NOT NULL, "expires_at" TIMESTAMP WITH TIME ZONE NOT NULL, "created_by" text NOT NULL, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_d9b043a74d8643fde7e6b948591" PRIMARY KEY ("id"))`);
    await queryRunner.query(`CREATE UNIQUE INDEX "UQ_enrollment_tokens_token_hash" ON "enrollment_tokens" ("token_hash")`);
    await queryRunner.query(`CREATE TABLE "git_sources" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "name" text NOT NULL, "url" text NOT NULL, "branch" text NOT NULL DEFAULT 'main', "path" text NOT NULL DEFAULT '.', "interval_seconds" integer NOT NULL DEFAULT '60', "last_commit" text, "last_synced_at" TIMESTAMP WITH TIME ZONE, "last_error" jsonb, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_07249e6d38a60e66f663022fc72" PRIMARY KEY ("id"))`);
    await queryRunner.query(`CREATE UNIQUE INDEX "UQ_git_sources_name" ON "git_sources" ("name")`);
    await queryRunner.query(`CREATE TABLE "models" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "name" text NOT NULL, "task" text, "description" text NOT NULL DEFAULT '', "labels" jsonb NOT NULL DEFAULT '{}', "source" text NOT NULL, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_ef9ed7160ea69013636466bf2d5" PRIMARY KEY ("id"))`);
    await queryRunner.query(`CREATE UNIQUE INDEX "UQ_models_name" ON "models" ("name")`);
    await queryRunner.query(`CREATE TABLE "model_versions" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "model_id" uuid NOT NULL, "version" text NOT NULL, "digest" text NOT NULL, "uri" text NOT NULL, "format" text NOT NULL, "size_bytes" bigint, "lineage" jsonb, "source" text NOT NULL, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_77c0256872dcc26394dba4b87ec" PRIMARY KEY ("id"))`);
    await queryRunner.query(`CREATE UNIQUE INDEX "UQ_model_versions_model_version" ON "model_versions" ("model_id", "version")`);
    await queryRunner.query(`CREATE TABLE "policy_objects" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "kind" text NOT NULL, "name" text NOT NULL, "labels" jsonb NOT NULL DEFAULT '{}', "spec" jsonb NOT NULL, "source" text NOT NULL, "commit" text, "generation" integer NOT NULL DEFAULT '1', "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_532a5174899682e532dd9e85e66" PRIMARY KEY ("id"))`);
    await queryRunner.query(`CREATE INDEX "IDX_policy_objects_source" ON "policy_objects" ("source")`);
    await queryRunner.query(`CREATE UNIQUE INDEX "UQ_policy_objects_kind_name" ON "policy_objects" ("kind", "name")`);
    await queryRunner.query(`ALTER TABLE "desired_states" ADD CONSTRAINT "FK_desired_states_spoke" FOREIGN KEY ("spoke_id") REFERENCES "spokes"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
    await queryRunner.query(`ALTER TABLE "model_versions" ADD CONSTRAINT "FK_model_versions_model" FOREIGN KEY ("model_id") REFERENCES "models"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "policy_objects"`);
    await queryRunner.query(`DROP TABLE "model_versions"`);
    await queryRunner.query(`DROP TABLE "models"`);
    await queryRunner.query(`DROP TABLE "git_sources"`);
    await queryRunner.query(`DROP TABLE "enrollment_tokens"`);
    await queryRunner.query(`DROP TABLE "desired_states"`);
    await queryRunner.query(`DROP TABLE "spokes"`);
    await queryRunner.query(`DROP TABLE "audit_events"`);
    await queryRunner.query(`DROP TABLE "api_tokens"`);
  }
}
