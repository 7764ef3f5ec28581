import type { Location } from '@flotilla/contracts';
import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

@Entity({ name: 'enrollment_tokens' })
export class EnrollmentTokenEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Index('UQ_enrollment_tokens_token_hash', { unique: true })
  @Column({ name: 'token_hash', type: 'text' })
  tokenHash!: string;

  @Column({ name: 'token_prefix', type: 'text' })
  tokenPrefix!: string;

  /** Labels stamped on every spoke enrolled with this token. */
  @Column({ type: 'jsonb', default: () => "'{}'" })
  labels!: Record<string, string>;

  /**
   * Label keys an agent enrolling with this token may ask for (`*`: any key
   * outside the reserved `flotilla.dev/` prefix). Empty: none, only the
   * token's own labels.
   */
  @Column({ name: 'allowed_label_keys', type: 'jsonb', default: () => "'[]'" })
  allowedLabelKeys!: string[];
  /** Location stamped on every spoke enrolled with this token (wins over the agent's). */
  @Column({ type: 'jsonb', nullable: true })
  location!: Location | null;

  @Column({ name: 'uses_total', type: 'integer' })
  usesTotal!: number;

  @Column({ name: 'uses_left', type: 'integer' })
  usesLeft!: number;

  @Column({ name: 'expires_at', type: 'timestamptz' })
  expiresAt!: Date;

  @Column({ name: 'created_by', type: 'text' })
  createdBy!: string;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
