import { readFile } from 'node:fs/promises';
import { toJsonSchema } from '@flotilla/policy';
import { renderPolicyReference } from './policy-reference.js';

describe('docs/policy-reference.md', () => {
  it('is what `npm run docs:policy` renders from the current schemas (run it after changing libs/policy)', async () => {
    const onDisk = await readFile('docs/policy-reference.md', 'utf8');
    expect(onDisk).toBe(renderPolicyReference(toJsonSchema()));
  });

  it('lists every field of every kind, nested ones included, with the schema’s constraints', () => {
    const md = renderPolicyReference(toJsonSchema());
    expect(md.match(/^## /gm)).toHaveLength(4);
    expect(md).toContain('| `spec.versions[].digest` | string | yes |  | matches `^sha256:[a-f0-9]{64}$` |');
    expect(md).toMatch(/\| `spec\.selector\.matchExpressions\[\]\.operator` \| string \| yes \|  \| `In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`, `Lt` \|/);
    expect(md).toMatch(/\| `spec\.resources\.cpu` \| string or number \|/);
  });
});
