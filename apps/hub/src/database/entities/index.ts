import { ApiTokenEntity } from './api-token.entity.js';
import { AuditEventEntity } from './audit-event.entity.js';
import { DesiredStateEntity } from './desired-state.entity.js';
import { EnrollmentTokenEntity } from './enrollment-token.entity.js';
import { GitSourceEntity } from './git-source.entity.js';
import { ModelVersionEntity } from './model-version.entity.js';
import { ModelEntity } from './model.entity.js';
import { PlacementDecisionEntity } from './placement-decision.entity.js';
import { PolicyObjectEntity } from './policy-object.entity.js';
import { SpokeEntity } from './spoke.entity.js';
import { SigningKeyRotationEntity } from './signing-key-rotation.entity.js';

export {
  ApiTokenEntity,
  AuditEventEntity,
  DesiredStateEntity,
  EnrollmentTokenEntity,
  GitSourceEntity,
  ModelEntity,
  ModelVersionEntity,
  PlacementDecisionEntity,
  PolicyObjectEntity,
  SpokeEntity,
  SigningKeyRotationEntity,
};

export const ENTITIES = [
  ApiTokenEntity,
  AuditEventEntity,
  DesiredStateEntity,
  EnrollmentTokenEntity,
  GitSourceEntity,
  ModelEntity,
  ModelVersionEntity,
  PlacementDecisionEntity,
  PolicyObjectEntity,
  SpokeEntity,
  SigningKeyRotationEntity,
];
