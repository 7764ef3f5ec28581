import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Hub high availability: the one row that names the leading hub. Exclusion
 * itself is a session advisory lock (leader-elector.ts); this row carries the
 * fencing epoch, bumped at every takeover, and who leads, for /readyz.
 */
export class HubLeader1764417150000 implements MigrationInterface {
  name = 'HubLeader1764417150000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    // Agent messages reach replicas out of order: a presence is kept only if newer than the stored one.
    await queryRunner.query(`ALTER TABLE "spokes" ADD "presence_at" TIMESTAMP WITH TIME ZONE`);
    await queryRunner.query(
      `CREATE TABLE "hub_leader" ("name" text NOT NULL, "hub_id" text NOT NULL, "api_url" text, "epoch" bigint NOT NULL, "acquired_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "renewed_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_hub_leader" PRIMARY KEY ("name"))`,
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "hub_leader"`);
    await queryRunner.query(`ALTER TABLE "spokes" DROP COLUMN "presence_at"`);
  }
}
