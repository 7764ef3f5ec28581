import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn, type Relation } from 'typeorm';
import { ModelEntity } from './model.entity.js';

export interface Lineage {
  baseVersion?: string;
  job?: string;
  spoke?: string;
  datasetFingerprint?: string;
  metrics?: Record<string, number>;
}

/** An immutable, content-addressed model version. */
@Entity({ name: 'model_versions' })
@Index('UQ_model_versions_model_version', ['modelId', 'version'], { unique: true })
export class ModelVersionEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'model_id', type: 'uuid' })
  modelId!: string;

  @ManyToOne(() => ModelEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'model_id', foreignKeyConstraintName: 'FK_model_versions_model' })
  model?: Relation<ModelEntity>;

  @Column({ type: 'text' })
  version!: string;

  @Column({ type: 'text' })
  digest!: string;

  @Column({ type: 'text' })
  uri!: string;

  @Column({ type: 'text' })
  format!: string;

  @Column({ name: 'size_bytes', type: 'bigint', nullable: true })
  sizeBytes!: string | null;

  @Column({ type: 'jsonb', nullable: true })
  lineage!: Lineage | null;

  @Column({ type: 'text' })
  source!: string;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
