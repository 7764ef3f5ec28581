import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

/**
 * One hub signing-key rotation: the new public key, announced under the
 * previous key (`sig`). Envelopes carry the latest links so that agents
 * follow the rotation from the key they pinned (libs/contracts signing-key-chain).
 */
@Entity({ name: 'signing_key_rotations' })
export class SigningKeyRotationEntity {
  @PrimaryGeneratedColumn('identity', { type: 'integer', generatedIdentity: 'ALWAYS', primaryKeyConstraintName: 'PK_signing_key_rotations' })
  id!: number;

  @Column({ name: 'public_key', type: 'text' })
  publicKey!: string;

  @Column({ name: 'previous_public_key', type: 'text' })
  previousPublicKey!: string;

  @Column({ type: 'text' })
  sig!: string;

  @Column({ name: 'rotated_by', type: 'text' })
  rotatedBy!: string;

  @Column({ name: 'rotated_at', type: 'timestamptz', default: () => 'now()' })
  rotatedAt!: Date;
}
