import { writeFile } from 'node:fs/promises';
import { toJsonSchema } from '@flotilla/policy';
import { renderPolicyReference } from './policy-reference.js';

// `npm run docs:policy [FILE]`: writes the generated policy reference (default docs/policy-reference.md, from the repository root).
const target = process.argv[2] ?? 'docs/policy-reference.md';
await writeFile(target, renderPolicyReference(toJsonSchema()));
process.stderr.write(`wrote ${target}\n`);
