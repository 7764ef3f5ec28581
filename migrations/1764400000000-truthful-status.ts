import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Generation-accurate status and stored decisions: the generation a spoke
 * accepted beside the one it reconciled, each policy object's conditions
 * (Stalled when it cannot be rendered), and each placement's decision as
 * computed at render time, so every view reads the same answer.
 */
export class TruthfulStatus1764400000000 implements MigrationInterface {
  name = 'TruthfulStatus1764400000000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "spokes" ADD "accepted_generation" integer NOT NULL DEFAULT '0'`);
    await queryRunner.query(`UPDATE "spokes" SET "accepted_generation" = "observed_generation"`);
    await queryRunner.query(`ALTER TABLE "policy_objects" ADD "conditions" jsonb NOT NULL DEFAULT '[]'`);
    await queryRunner.query(
      `CREATE TABLE "placement_decisions" ("placement" text NOT NULL, "policy_generation" integer NOT NULL, "selected" jsonb NOT NULL, "excluded" jsonb NOT NULL, "computed_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_placement_decisions" PRIMARY KEY ("placement"))`,
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "placement_decisions"`);
    await queryRunner.query(`ALTER TABLE "policy_objects" DROP COLUMN "conditions"`);
    await queryRunner.query(`ALTER TABLE "spokes" DROP COLUMN "accepted_generation"`);
  }
}
