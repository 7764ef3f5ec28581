import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';

/** A policy object's condition, as Kubernetes' metav1.Condition. */
export interface ObjectCondition {
  type: 'Stalled' | 'Ready';
  status: 'True' | 'False';
  reason: string;
  message: string;
  lastTransitionTime: string;
  /** The object's generation the condition was computed from. */
  observedGeneration: number;
}

/** One applied policy document (Model, Placement, ModelDeployment, FineTuneJob). */
@Entity({ name: 'policy_objects' })
@Index('UQ_policy_objects_kind_name', ['kind', 'name'], { unique: true })
export class PolicyObjectEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ type: 'text' })
  kind!: string;

  @Column({ type: 'text' })
  name!: string;

  @Column({ type: 'jsonb', default: () => "'{}'" })
  labels!: Record<string, string>;

  @Column({ type: 'jsonb' })
  spec!: Record<string, unknown>;

  /** `api:<token name>` or `git:<source name>`; prune works per source. */
  @Index('IDX_policy_objects_source')
  @Column({ type: 'text' })
  source!: string;

  @Column({ type: 'text', name: 'commit', nullable: true })
  commit!: string | null;

  /** Stalled (cannot be rendered: a missing placement or model version) or Ready, as the last render found it. */
  @Column({ type: 'jsonb', default: () => "'[]'" })
  conditions!: ObjectCondition[];

  /** Rises when the spec changes. */
  @Column({ type: 'integer', default: 1 })
  generation!: number;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
