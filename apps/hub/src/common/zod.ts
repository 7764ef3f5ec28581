import { Body, type PipeTransform, Query } from '@nestjs/common';
import type { z } from 'zod';
import { type FieldProblem, validationFailed } from '../errors/domain-error.js';

export function zodProblems(error: z.ZodError): FieldProblem[] {
  return error.issues.map((i) => {
    let message = i.message;
    if (i.code === 'unrecognized_keys') message = `unknown field(s): ${i.keys.join(', ')}`;
    return { field: i.path.map(String).join('.'), message };
  });
}

/** Validates with a zod schema at the boundary; errors name each field. */
export class ZodPipe<T extends z.ZodType> implements PipeTransform<unknown, z.infer<T>> {
  constructor(
    private readonly schema: T,
    private readonly what: string,
  ) {}

  transform(value: unknown): z.infer<T> {
    const r = this.schema.safeParse(value ?? {});
    if (!r.success) throw validationFailed(zodProblems(r.error), this.what);
    return r.data;
  }
}

/**
 * `@ZodBody(schema)`: validated body parameter. The OpenAPI document takes the
 * same schema from apps/hub/src/openapi/operations.ts.
 */
export const ZodBody = (schema: z.ZodType): ParameterDecorator => Body(new ZodPipe(schema, 'request body'));

/** `@ZodQuery(schema)`: validated query string (documented from the same schema, as for bodies). */
export const ZodQuery = (schema: z.ZodObject): ParameterDecorator => Query(new ZodPipe(schema, 'query string'));
