import type { DesiredDeployment, DesiredPayload } from '@flotilla/contracts';
import type { FleetRender, PolicyObject, SpokeView } from '@flotilla/policy';
import type { EntityManager } from 'typeorm';

/** What a source of per-spoke decisions sees of one render. */
export interface RenderContext {
  objects: readonly PolicyObject[];
  spokes: readonly SpokeView[];
  /** The fresh render: every deployment as its policy says, on every spoke its placement selects. */
  render: FleetRender;
  /** Each spoke's stored payload before this render. */
  previous: ReadonlyMap<string, DesiredPayload>;
  /**
   * Set when only these spokes were rendered (an enrolment, a label or
   * capacity change): `spokes`, `render.payloads` and `render.decisions`
   * cover them only, and the policy did not change. A source must not read
   * a spoke's absence here as leaving a placement, nor start anything fleet-wide.
   */
  scope?: ReadonlySet<string>;
}

/** spoke -> deployment name -> the rendered deployment that spoke gets instead of the policy's. */
export type DeploymentOverrides = Map<string, Map<string, DesiredDeployment>>;

/**
 * One reason a spoke may serve another rendering of a deployment than its
 * policy says: a rollout holding it on the previous revision, or a
 * promotion of a version fine-tuned on that spoke. Runs inside the render's
 * transaction and may record what it decided there (a rollout that starts).
 */
export interface DeploymentOverrideSource {
  readonly name: string;
  decide(em: EntityManager, ctx: RenderContext): Promise<DeploymentOverrides>;
  /**
   * The stored payloads as they would be without this source's own
   * overrides, if it has any to take out: every source then compares the
   * policy with what the spokes got from the policy and the other sources
   * (a rollout must not read a promotion on one spoke as a policy change).
   */
  withoutOwnOverrides?(em: EntityManager, ctx: RenderContext): Promise<ReadonlyMap<string, DesiredPayload>>;
}

/**
 * The one place that decides, per spoke and deployment, which rendering of a
 * deployment the FleetRenderer stores: the policy's, or an override from a
 * source. Sources are asked in order and a later one wins for the same
 * spoke and deployment. Only deployments already on the spoke are replaced:
 * an override never places a deployment where its placement does not.
 */
export class SpokeVersionDecisions {
  constructor(private readonly sources: readonly DeploymentOverrideSource[]) {}

  async apply(em: EntityManager, ctx: RenderContext): Promise<void> {
    let previous = ctx.previous;
    for (const source of this.sources) if (source.withoutOwnOverrides) previous = await source.withoutOwnOverrides(em, { ...ctx, previous });
    const seen: RenderContext = { ...ctx, previous };
    for (const source of this.sources) {
      const overrides = await source.decide(em, seen);
      for (const [spoke, byDeployment] of overrides) {
        const payload = ctx.render.payloads.get(spoke);
        if (!payload) continue;
        payload.deployments = payload.deployments.map((d) => byDeployment.get(d.name) ?? d);
      }
    }
  }
}
