import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Promotion of fine-tuned versions (issue 13, deliverable 7): per deployment
 * and spoke, the produced version that spoke serves instead of the policy's,
 * from which job and generation, over which previous version, where it is
 * (Progressing, Verifying, Promoted, RolledBack, Withdrawn) and why. One row
 * per (deployment, spoke): a newer promotion replaces the row, and the
 * versions once promoted there are kept in `history` so a version that was
 * rolled back is never promoted again automatically.
 */
export class SpokePromotions1764486000000 implements MigrationInterface {
  name = 'SpokePromotions1764486000000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "spoke_promotions" (
        "deployment" text NOT NULL,
        "spoke" text NOT NULL,
        "model" text NOT NULL,
        "version" text NOT NULL,
        "job" text NOT NULL,
        "job_generation" integer NOT NULL,
        "base_model" text,
        "base_version" text,
        "policy_version" text NOT NULL,
        "previous_version" text,
        "previous_model" jsonb,
        "state" text NOT NULL,
        "reason" text NOT NULL DEFAULT '',
        "message" text NOT NULL DEFAULT '',
        "actor" text NOT NULL,
        "gates" jsonb NOT NULL DEFAULT '[]',
        "target_generation" integer,
        "step_started_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
        "ready_at" TIMESTAMP WITH TIME ZONE,
        "history" jsonb NOT NULL DEFAULT '[]',
        "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
        "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
        CONSTRAINT "PK_spoke_promotions" PRIMARY KEY ("deployment", "spoke"))`,
    );
    await queryRunner.query(`CREATE INDEX "IDX_spoke_promotions_active" ON "spoke_promotions" ("deployment") WHERE "state" IN ('Progressing', 'Verifying', 'Promoted')`);
    await queryRunner.query(`CREATE INDEX "IDX_spoke_promotions_job" ON "spoke_promotions" ("job")`);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "spoke_promotions"`);
  }
}
