import { type CheckContext, type InvariantResult, type Violation, result, sleep } from './invariant.js';

/**
 * (5) Every committed change has its audit event. For each change the hub
 * confirmed to the driver (and each enrolment the CLI completed), an event
 * with the same action and target must be in GET /api/v1/audit-events,
 * carrying one of the request ids that may have committed it (the driver
 * sends its own X-Request-Id); an event without a request id is matched by
 * time instead. Each event answers for one change only.
 */

interface AuditEvent {
  id: number;
  at: string;
  action: string;
  target: string;
  requestId?: string | null;
}

/** Slack around a step's start and end for events matched by time (same machine, same clock). */
const WINDOW_SLACK_MS = 5_000;

export async function checkAuditTrail(ctx: CheckContext): Promise<InvariantResult> {
  const deadline = Date.now() + 30_000;
  let events: AuditEvent[] | null = null;
  while (!(events = await ctx.api.readAll<AuditEvent>('/api/v1/audit-events')) && Date.now() < deadline) await sleep(1_000);
  if (!events) {
    return result([{ message: `GET /api/v1/audit-events never succeeded within 30 s (last: ${ctx.api.lastFailure})`, evidence: { hubLogTail: ctx.system.hub?.logTail(2000) } }], undefined, true);
  }
  const unused = new Set(events.map((e) => e.id));
  const violations: Violation[] = [];
  let expected = 0;
  for (const step of ctx.driver.steps) {
    if (step.outcome !== 'committed') continue;
    for (const want of step.expectedAudit) {
      expected++;
      const match = events.find((e) => {
        if (!unused.has(e.id) || e.action !== want.action || e.target !== want.target) return false;
        if (e.requestId && step.committedBy.length > 0) return step.committedBy.includes(e.requestId);
        const at = Date.parse(e.at);
        return at >= step.startedAt - WINDOW_SLACK_MS && at <= step.endedAt + WINDOW_SLACK_MS;
      });
      if (match) {
        unused.delete(match.id);
        continue;
      }
      const sameTarget = events.filter((e) => e.target === want.target).map((e) => ({ id: e.id, at: e.at, action: e.action, requestId: e.requestId }));
      violations.push({
        message: `no audit event ${want.action} ${want.target} for "${step.description}" (confirmed by request ${step.committedBy.join(' or ') || '(CLI)'})`,
        evidence: { step: { index: step.index, startedAt: new Date(step.startedAt).toISOString(), endedAt: new Date(step.endedAt).toISOString(), attempts: step.attempts }, eventsWithThatTarget: sameTarget },
      });
    }
  }
  return result(violations, { expectedEvents: expected, auditEvents: events.length });
}
