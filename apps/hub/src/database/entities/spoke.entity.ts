import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';
import type { Capacity, Location, ReportedCondition, ReportedDeploymentStatus, ReportedJobRunStatus, Telemetry } from '@flotilla/contracts';

export type PresenceState = 'online' | 'offline';

/** An enrolled edge appliance. Revoked spokes are kept for the record but can never connect. */
@Entity({ name: 'spokes' })
@Index('IDX_spokes_labels', { synchronize: false }) // GIN, created in the migration
export class SpokeEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Index('UQ_spokes_name_active', { unique: true, where: '"revoked_at" IS NULL' })
  @Column({ type: 'text' })
  name!: string;

  @Column({ type: 'jsonb', default: () => "'{}'" })
  labels!: Record<string, string>;

  @Column({ type: 'jsonb', nullable: true })
  capacity!: Capacity | null;

  /** Where the spoke is, for routing (`GET /api/v1/route`); null when nobody said. */
  @Column({ type: 'jsonb', nullable: true })
  location!: Location | null;

  @Column({ type: 'jsonb', default: () => "'{}'" })
  facts!: Record<string, unknown>;

  /** Presence as last reported by the agent or its will; `stale` is derived from lastSeenAt. */
  @Column({ type: 'text', default: 'offline' })
  presence!: PresenceState;

  @Column({ name: 'session_id', type: 'text', nullable: true })
  sessionId!: string | null;

  /** When the agent said the presence stored (its clock): replicas ingest out of order, the older word never wins. */
  @Column({ name: 'presence_at', type: 'timestamptz', nullable: true })
  presenceAt!: Date | null;

  @Column({ name: 'last_seen_at', type: 'timestamptz', nullable: true })
  lastSeenAt!: Date | null;

  @Column({ name: 'desired_generation', type: 'integer', default: 0 })
  desiredGeneration!: number;

  /** Generation of the last envelope the agent verified and stored. */
  @Column({ name: 'accepted_generation', type: 'integer', default: 0 })
  acceptedGeneration!: number;

  /** Generation whose reconcile finished on the spoke. */
  @Column({ name: 'observed_generation', type: 'integer', default: 0 })
  observedGeneration!: number;

  @Column({ type: 'jsonb', default: () => "'[]'" })
  conditions!: ReportedCondition[];

  @Column({ name: 'deployment_statuses', type: 'jsonb', default: () => "'[]'" })
  deploymentStatuses!: ReportedDeploymentStatus[];

  @Column({ name: 'job_statuses', type: 'jsonb', default: () => "'[]'" })
  jobStatuses!: ReportedJobRunStatus[];

  @Column({ type: 'jsonb', nullable: true })
  telemetry!: Telemetry | null;

  @Column({ name: 'telemetry_at', type: 'timestamptz', nullable: true })
  telemetryAt!: Date | null;

  /** MQTT username; the MQTT client id is the spoke name. */
  @Index('UQ_spokes_mqtt_username', { unique: true })
  @Column({ name: 'mqtt_username', type: 'text' })
  mqttUsername!: string;

  /** sha256 of the MQTT password; the password itself is shown once at enrolment. */
  @Column({ name: 'credential_hash', type: 'text', nullable: true })
  credentialHash!: string | null;

  @Column({ name: 'revoked_at', type: 'timestamptz', nullable: true })
  revokedAt!: Date | null;

  @Column({ name: 'enrollment_token_id', type: 'uuid', nullable: true })
  enrollmentTokenId!: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
