import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Security hardening: which label keys an enrolment token lets an agent
 * claim (none by default), and the hub signing-key rotations, each new key
 * announced under the one before it so enrolled agents can follow.
 */
export class SecurityHardening1764471200000 implements MigrationInterface {
  name = 'SecurityHardening1764471200000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "enrollment_tokens" ADD "allowed_label_keys" jsonb NOT NULL DEFAULT '[]'`);
    await queryRunner.query(
      `CREATE TABLE "signing_key_rotations" ("id" integer GENERATED ALWAYS AS IDENTITY NOT NULL, "public_key" text NOT NULL, "previous_public_key" text NOT NULL, "sig" text NOT NULL, "rotated_by" text NOT NULL, "rotated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_signing_key_rotations" PRIMARY KEY ("id"))`,
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "signing_key_rotations"`);
    await queryRunner.query(`ALTER TABLE "enrollment_tokens" DROP COLUMN "allowed_label_keys"`);
  }
}
