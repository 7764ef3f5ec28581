import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Smart routing: each spoke's position (`{lat, lon}`, a field rather than a
 * label, since label values cannot start with "-"), and the position an
 * enrolment token stamps on the spokes it enrols.
 */
export class SpokeLocation1764417170000 implements MigrationInterface {
  name = 'SpokeLocation1764417170000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "spokes" ADD "location" jsonb`);
    await queryRunner.query(`ALTER TABLE "enrollment_tokens" ADD "location" jsonb`);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "enrollment_tokens" DROP COLUMN "location"`);
    await queryRunner.query(`ALTER TABLE "spokes" DROP COLUMN "location"`);
  }
}
