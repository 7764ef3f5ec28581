import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/** Append-only record of every mutation. */
@Entity({ name: 'audit_events' })
export class AuditEventEntity {
  @PrimaryGeneratedColumn('identity', { type: 'bigint', generatedIdentity: 'ALWAYS' })
  id!: string;

  @Index('IDX_audit_events_at')
  @Column({ type: 'timestamptz', default: () => 'now()' })
  at!: Date;

  /** `token:<name>`, `spoke:<name>`, `git:<source>`, `system`. */
  @Column({ type: 'text' })
  actor!: string;

  @Column({ type: 'text' })
  action!: string;

  @Index('IDX_audit_events_target')
  @Column({ type: 'text' })
  target!: string;

  @Column({ name: 'before_digest', type: 'text', nullable: true })
  beforeDigest!: string | null;

  @Column({ name: 'after_digest', type: 'text', nullable: true })
  afterDigest!: string | null;

  @Column({ type: 'jsonb', default: () => "'{}'" })
  details!: Record<string, unknown>;

  @Column({ name: 'request_id', type: 'text', nullable: true })
  requestId!: string | null;
}
