import { Body, type PipeTransform, Query, applyDecorators } from '@nestjs/common';
import { ApiBody, ApiQuery } from '@nestjs/swagger';
import { z } from 'zod';
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

/** JSON Schema of a zod schema, for the OpenAPI document. */
export function openApiSchema(schema: z.ZodType): Record<string, unknown> {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  delete json.$schema;
  return json;
}

/** `@ZodBody(schema)`: validated body parameter, documented in OpenAPI. */
export function ZodBody(schema: z.ZodType): ParameterDecorator {
  return (target, key, index) => {
    Body(new ZodPipe(schema, 'request body'))(target, key, index);
    if (key !== undefined) {
      const descriptor = Object.getOwnPropertyDescriptor(target, key);
      if (descriptor) ApiBody({ schema: openApiSchema(schema) })(target, key, descriptor);
    }
  };
}

/** `@ZodQuery(schema)`: validated query string, each property documented. */
export function ZodQuery(schema: z.ZodObject): ParameterDecorator {
  return (target, key, index) => {
    Query(new ZodPipe(schema, 'query string'))(target, key, index);
    if (key !== undefined) {
      const descriptor = Object.getOwnPropertyDescriptor(target, key);
      if (descriptor) {
        const json = openApiSchema(schema) as { properties?: Record<string, Record<string, unknown>>; required?: string[] };
        const decorators = Object.entries(json.properties ?? {}).map(([name, s]) =>
          ApiQuery({ name, required: (json.required ?? []).includes(name), schema: s, description: s.description as string | undefined }),
        );
        applyDecorators(...decorators)(target, key, descriptor);
      }
    }
  };
}
