import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Progressive rollouts (DESIGN.md section 11): one current rollout per
 * ModelDeployment and one row per spoke it moves, so a hub restart resumes
 * from the same wave; and one-shot commands to agents with their results.
 */
export class Rollouts1764417140000 implements MigrationInterface {
  name = 'Rollouts1764417140000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "rollouts" (
        "deployment" text NOT NULL,
        "id" uuid NOT NULL,
        "phase" text NOT NULL,
        "paused" boolean NOT NULL DEFAULT false,
        "rolling_back" boolean NOT NULL DEFAULT false,
        "from_version" text,
        "to_version" text NOT NULL,
        "to_hash" text NOT NULL,
        "revisions" jsonb NOT NULL,
        "wave" integer NOT NULL DEFAULT 0,
        "waves" integer NOT NULL,
        "wave_started_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
        "message" text NOT NULL DEFAULT '',
        "started_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
        "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
        "finished_at" TIMESTAMP WITH TIME ZONE,
        CONSTRAINT "PK_rollouts" PRIMARY KEY ("deployment"))`,
    );
    await queryRunner.query(
      `CREATE TABLE "rollout_spokes" (
        "deployment" text NOT NULL,
        "spoke" text NOT NULL,
        "position" integer NOT NULL,
        "wave" integer NOT NULL,
        "from_hash" text NOT NULL,
        "state" text NOT NULL,
        "failed" boolean NOT NULL DEFAULT false,
        "reason" text NOT NULL DEFAULT '',
        "message" text NOT NULL DEFAULT '',
        "gates" jsonb NOT NULL DEFAULT '[]',
        "failed_gates" jsonb,
        "baseline" jsonb,
        "target_generation" integer,
        "step_started_at" TIMESTAMP WITH TIME ZONE,
        "ready_at" TIMESTAMP WITH TIME ZONE,
        "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
        CONSTRAINT "PK_rollout_spokes" PRIMARY KEY ("deployment", "spoke"),
        CONSTRAINT "FK_rollout_spokes_rollout" FOREIGN KEY ("deployment") REFERENCES "rollouts"("deployment") ON DELETE CASCADE)`,
    );
    await queryRunner.query(
      `CREATE TABLE "spoke_commands" (
        "id" uuid NOT NULL,
        "spoke" text NOT NULL,
        "type" text NOT NULL,
        "target" text,
        "state" text NOT NULL,
        "actor" text NOT NULL,
        "result" jsonb,
        "message" text NOT NULL DEFAULT '',
        "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
        "sent_at" TIMESTAMP WITH TIME ZONE,
        "finished_at" TIMESTAMP WITH TIME ZONE,
        CONSTRAINT "PK_spoke_commands" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(`CREATE INDEX "IDX_spoke_commands_open" ON "spoke_commands" ("state") WHERE "state" IN ('Queued', 'Sent')`);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "spoke_commands"`);
    await queryRunner.query(`DROP TABLE "rollout_spokes"`);
    await queryRunner.query(`DROP TABLE "rollouts"`);
  }
}
