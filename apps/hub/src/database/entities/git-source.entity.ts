import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';

/** A policy repository the hub follows. */
@Entity({ name: 'git_sources' })
export class GitSourceEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Index('UQ_git_sources_name', { unique: true })
  @Column({ type: 'text' })
  name!: string;

  @Column({ type: 'text' })
  url!: string;

  @Column({ type: 'text', default: 'main' })
  branch!: string;

  @Column({ type: 'text', default: '.' })
  path!: string;

  @Column({ name: 'interval_seconds', type: 'integer', default: 60 })
  intervalSeconds!: number;

  @Column({ name: 'last_commit', type: 'text', nullable: true })
  lastCommit!: string | null;

  @Column({ name: 'last_synced_at', type: 'timestamptz', nullable: true })
  lastSyncedAt!: Date | null;

  @Column({ name: 'last_error', type: 'jsonb', nullable: true })
  lastError!: Record<string, unknown> | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
