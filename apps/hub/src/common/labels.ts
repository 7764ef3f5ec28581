import { labelKeyProblem, labelValueProblem } from '@flotilla/policy';
import { z } from 'zod';

/** Kubernetes-style labels, validated as Kubernetes does. */
export const LabelsSchema = z.record(z.string(), z.string()).superRefine((labels, ctx) => {
  for (const [k, v] of Object.entries(labels)) {
    const kp = labelKeyProblem(k);
    if (kp) ctx.addIssue({ code: 'custom', path: [k], message: `label key: ${kp}` });
    const vp = labelValueProblem(v);
    if (vp) ctx.addIssue({ code: 'custom', path: [k], message: `label value: ${vp}` });
  }
  if (Object.keys(labels).length > 64) ctx.addIssue({ code: 'custom', message: 'at most 64 labels' });
});
