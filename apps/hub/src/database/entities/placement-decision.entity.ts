import { Column, Entity, PrimaryColumn } from 'typeorm';

/**
 * A placement's decision at the last render (OCM's PlacementDecision): this
 * row says which generation of the placement it was computed from and when;
 * what it chose for each spoke, and why it left the others out, is one row
 * per (placement, spoke) in `placement_decision_spokes` (no entity: raw SQL in
 * the FleetRenderer and PolicyQueries). Written by the renderer in the
 * transaction that writes the desired states it led to; every view reads it.
 */
@Entity({ name: 'placement_decisions' })
export class PlacementDecisionEntity {
  @PrimaryColumn({ type: 'text', primaryKeyConstraintName: 'PK_placement_decisions' })
  placement!: string;

  /** The placement object's generation the decision was computed from. */
  @Column({ name: 'policy_generation', type: 'integer' })
  policyGeneration!: number;

  @Column({ name: 'computed_at', type: 'timestamptz', default: () => 'now()' })
  computedAt!: Date;
}
