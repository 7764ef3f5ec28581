import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Per-spoke diffs of applies and deletes too large for one answer: the answer
 * carries counts and the first page, the rest is read from here by cursor.
 * Kept for a day.
 */
export class ApplyReports1764450000000 implements MigrationInterface {
  name = 'ApplyReports1764450000000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "apply_reports" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "dry_run" boolean NOT NULL, "actor" text NOT NULL, "summary" jsonb NOT NULL, "spokes" jsonb NOT NULL, CONSTRAINT "PK_apply_reports" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(`CREATE INDEX "IDX_apply_reports_created_at" ON "apply_reports" ("created_at")`);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "apply_reports"`);
  }
}
