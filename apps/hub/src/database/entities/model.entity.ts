import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';

@Entity({ name: 'models' })
export class ModelEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Index('UQ_models_name', { unique: true })
  @Column({ type: 'text' })
  name!: string;

  @Column({ type: 'text', nullable: true })
  task!: string | null;

  @Column({ type: 'text', default: '' })
  description!: string;

  @Column({ type: 'jsonb', default: () => "'{}'" })
  labels!: Record<string, string>;

  /** Who last wrote it: `api:<token name>` or `git:<source>`. */
  @Column({ type: 'text' })
  source!: string;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
