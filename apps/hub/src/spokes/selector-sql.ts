import { SelectorError, parseSelector, type Selector } from '@flotilla/policy';
import { validationFailed } from '../errors/domain-error.js';

export interface SqlFragment {
  sql: string;
  params: Record<string, unknown>;
}

/**
 * Translates a label selector into a WHERE fragment over the jsonb `labels`
 * column. Equality and existence use `@>` / `?` so the GIN index serves
 * them; NotIn and DoesNotExist match spokes without the key, as Kubernetes does.
 */
export function selectorToSql(selector: Selector, column = 'spoke.labels', prefix = 'sel'): SqlFragment {
  const clauses: string[] = [];
  const params: Record<string, unknown> = {};
  selector.requirements.forEach((r, i) => {
    const p = `${prefix}${i}`;
    params[`${p}k`] = r.key;
    switch (r.operator) {
      case 'In': {
        const alts = r.values.map((v, j) => {
          params[`${p}v${j}`] = JSON.stringify({ [r.key]: v });
          return `${column} @> CAST(:${p}v${j} AS jsonb)`;
        });
        clauses.push(`(${alts.join(' OR ')})`);
        break;
      }
      case 'NotIn':
        params[`${p}vs`] = r.values;
        clauses.push(`NOT (${column} ? :${p}k AND (${column} ->> :${p}k) = ANY(:${p}vs))`);
        break;
      case 'Exists':
        clauses.push(`${column} ? :${p}k`);
        break;
      case 'DoesNotExist':
        clauses.push(`NOT (${column} ? :${p}k)`);
        break;
      case 'Gt':
      case 'Lt': {
        params[`${p}n`] = r.values[0];
        const op = r.operator === 'Gt' ? '>' : '<';
        // Only integer-valued labels compare, as in Kubernetes.
        clauses.push(
          `((${column} ->> :${p}k) ~ '^-?[0-9]+$' AND CAST(${column} ->> :${p}k AS numeric) ${op} CAST(:${p}n AS numeric))`,
        );
        break;
      }
    }
  });
  return { sql: clauses.length ? clauses.join(' AND ') : 'TRUE', params };
}

/** Parses a `?selector=` query value into a WHERE fragment; a bad selector is a 400 naming the field. */
export function selectorQueryToSql(text: string, column?: string): SqlFragment {
  let selector: Selector;
  try {
    selector = parseSelector(text);
  } catch (err) {
    if (err instanceof SelectorError) throw validationFailed([{ field: 'selector', message: err.message }], 'query string');
    throw err;
  }
  return selectorToSql(selector, column);
}
