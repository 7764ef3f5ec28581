import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Incremental rendering: placement decisions one row per (placement, spoke),
 * so an enrolment writes a few rows instead of every placement's whole list,
 * and `render_requests`, the durable "this spoke changed, render it" marker
 * an enrolment or a capacity change leaves in its own transaction. The
 * per-placement row keeps what belongs to the placement (its generation, when
 * it was computed). Existing decisions are converted; their rendezvous scores
 * start at 0 and the hub's first full render (at every leader start) rewrites them.
 */
export class IncrementalRender1764500000000 implements MigrationInterface {
  name = 'IncrementalRender1764500000000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "placement_decision_spokes" ("placement" text NOT NULL, "spoke" text NOT NULL, "selected" boolean NOT NULL, "eligible" boolean NOT NULL, "score" double precision NOT NULL, "reasons" jsonb, "computed_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_placement_decision_spokes" PRIMARY KEY ("placement", "spoke"))`,
    );
    // maxSpokes: the N-th best eligible spoke (the boundary), and the few spokes on either side of it.
    await queryRunner.query(`CREATE INDEX "IDX_pds_eligible_rank" ON "placement_decision_spokes" ("placement", "score" DESC, "spoke" COLLATE "C") WHERE "eligible"`);
    await queryRunner.query(`CREATE INDEX "IDX_pds_selected_rank" ON "placement_decision_spokes" ("placement", "score") WHERE "selected"`);
    await queryRunner.query(`CREATE INDEX "IDX_pds_waiting_rank" ON "placement_decision_spokes" ("placement", "score" DESC) WHERE "eligible" AND NOT "selected"`);
    await queryRunner.query(`CREATE INDEX "IDX_pds_spoke" ON "placement_decision_spokes" ("spoke")`);
    await queryRunner.query(
      `INSERT INTO "placement_decision_spokes" ("placement", "spoke", "selected", "eligible", "score", "reasons", "computed_at")
       SELECT d.placement, s.spoke, true, true, 0, NULL, d.computed_at FROM "placement_decisions" d, jsonb_array_elements_text(d.selected) AS s(spoke)
       UNION ALL
       SELECT d.placement, e->>'spoke', false, (e->'reasons'->>0) LIKE 'maxSpokes:%', 0,
              CASE WHEN (e->'reasons'->>0) LIKE 'maxSpokes:%' THEN NULL ELSE e->'reasons' END, d.computed_at
       FROM "placement_decisions" d, jsonb_array_elements(d.excluded) AS e
       ON CONFLICT DO NOTHING`,
    );
    await queryRunner.query(`ALTER TABLE "placement_decisions" DROP COLUMN "selected"`);
    await queryRunner.query(`ALTER TABLE "placement_decisions" DROP COLUMN "excluded"`);
    await queryRunner.query(`CREATE SEQUENCE "render_request_seq"`);
    await queryRunner.query(
      `CREATE TABLE "render_requests" ("spoke" text NOT NULL, "seq" bigint NOT NULL DEFAULT nextval('render_request_seq'), "requested_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "PK_render_requests" PRIMARY KEY ("spoke"))`,
    );
    await queryRunner.query(`CREATE INDEX "IDX_render_requests_seq" ON "render_requests" ("seq")`);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "render_requests"`);
    await queryRunner.query(`DROP SEQUENCE "render_request_seq"`);
    await queryRunner.query(`ALTER TABLE "placement_decisions" ADD "selected" jsonb NOT NULL DEFAULT '[]'`);
    await queryRunner.query(`ALTER TABLE "placement_decisions" ADD "excluded" jsonb NOT NULL DEFAULT '[]'`);
    await queryRunner.query(
      `UPDATE "placement_decisions" d SET
         selected = COALESCE((SELECT jsonb_agg(p.spoke ORDER BY p.spoke COLLATE "C") FROM "placement_decision_spokes" p WHERE p.placement = d.placement AND p.selected), '[]'),
         excluded = COALESCE((SELECT jsonb_agg(jsonb_build_object('spoke', p.spoke, 'reasons', COALESCE(p.reasons, '["maxSpokes: eligible, but not chosen"]'::jsonb)) ORDER BY p.spoke COLLATE "C")
                              FROM "placement_decision_spokes" p WHERE p.placement = d.placement AND NOT p.selected), '[]')`,
    );
    await queryRunner.query(`ALTER TABLE "placement_decisions" ALTER COLUMN "selected" DROP DEFAULT`);
    await queryRunner.query(`ALTER TABLE "placement_decisions" ALTER COLUMN "excluded" DROP DEFAULT`);
    await queryRunner.query(`DROP TABLE "placement_decision_spokes"`);
  }
}
