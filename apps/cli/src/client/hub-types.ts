import type {
  ApplyResult as ApiApplyResult,
  Condition as ApiCondition,
  DeploymentView as ApiDeploymentView,
  FineTuneJobView as ApiFineTuneJobView,
  GitSource,
  PlacementView as ApiPlacementView,
  PolicyObjectView as ApiPolicyObjectView,
  Spoke,
  SpokeDetail,
} from '@flotilla/contracts';
import type { FineTuneJob, ModelDeployment, Placement } from '@flotilla/policy';

/**
 * The admin API's answers as the CLI reads them: the response schemas of
 * `@flotilla/contracts` (the ones the hub's OpenAPI document is built from),
 * with each policy object's `spec` typed by the policy schema it was applied
 * with. `-o json|yaml` prints the answers whole.
 */

export type Condition = ApiCondition;

/** A spoke as listed; `describe` asks for one by name and gets the detail fields too. */
export type SpokeView = Spoke & Partial<Pick<SpokeDetail, 'facts' | 'telemetry' | 'telemetryAt'>>;

export type PolicyObjectView = ApiPolicyObjectView;

export type PlacementView = Omit<ApiPlacementView, 'spec'> & { spec: Placement['spec'] };

export type DeploymentView = Omit<ApiDeploymentView, 'spec'> & { spec: ModelDeployment['spec'] };

export type JobView = Omit<ApiFineTuneJobView, 'spec'> & { spec: FineTuneJob['spec'] };

export type GitSourceView = GitSource;

export type ApplyResult = ApiApplyResult;

/** A model as `flotilla get models` shows it: from a Model policy object or from the registry. */
export interface ModelView {
  name: string;
  task: string | null;
  source: string;
  versions: string[];
}
