import { Column, Entity, JoinColumn, OneToOne, PrimaryColumn, UpdateDateColumn, type Relation } from 'typeorm';
import type { DesiredPayload } from '@flotilla/contracts';
import { SpokeEntity } from './spoke.entity.js';

/** The rendered desired state of one spoke; `generation` rises only when `hash` changes. */
@Entity({ name: 'desired_states' })
export class DesiredStateEntity {
  @PrimaryColumn({ name: 'spoke_id', type: 'uuid' })
  spokeId!: string;

  @OneToOne(() => SpokeEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'spoke_id', foreignKeyConstraintName: 'FK_desired_states_spoke' })
  spoke?: Relation<SpokeEntity>;

  @Column({ type: 'integer' })
  generation!: number;

  @Column({ type: 'jsonb' })
  payload!: DesiredPayload;

  @Column({ type: 'text' })
  hash!: string;

  @Column({ name: 'issued_at', type: 'timestamptz' })
  issuedAt!: Date;

  @Column({ name: 'published_at', type: 'timestamptz', nullable: true })
  publishedAt!: Date | null;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
