import { Column, Entity, PrimaryColumn } from 'typeorm';

/**
 * What a placement chose at the last render, and why it left the other spokes
 * out (OCM's PlacementDecision). Written by the desired-state controller in the
 * transaction that writes the desired states it led to; every view reads it.
 */
@Entity({ name: 'placement_decisions' })
export class PlacementDecisionEntity {
  @PrimaryColumn({ type: 'text', primaryKeyConstraintName: 'PK_placement_decisions' })
  placement!: string;

  /** The placement object's generation the decision was computed from. */
  @Column({ name: 'policy_generation', type: 'integer' })
  policyGeneration!: number;

  /** Chosen spokes, sorted by name. */
  @Column({ type: 'jsonb' })
  selected!: string[];

  /** Every other spoke with its reasons. */
  @Column({ type: 'jsonb' })
  excluded!: { spoke: string; reasons: string[] }[];

  @Column({ name: 'computed_at', type: 'timestamptz', default: () => 'now()' })
  computedAt!: Date;
}
