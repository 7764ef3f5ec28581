import { access, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

/** Relative links of a markdown file (not URLs, not in-page anchors), with the line they are on. */
async function relativeLinks(file: string): Promise<{ line: number; target: string }[]> {
  const text = await readFile(file, 'utf8');
  return text.split('\n').flatMap((l, i) =>
    // Code spans (regular expressions in the policy reference) hold no links.
    [...l.replace(/`[^`]*`/g, '').matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!).filter((t) => !/^[a-z]+:/i.test(t) && !t.startsWith('#')).map((target) => ({ line: i + 1, target })),
  );
}

describe('README.md and docs/', () => {
  test('every relative link points at a file inside the repository', async () => {
    const root = process.cwd();
    const files = ['README.md', 'examples/policies/README.md', ...(await readdir('docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
    expect(files).toEqual(expect.arrayContaining(['docs/architecture.md', 'docs/protocol.md', 'docs/policy.md', 'docs/api.md', 'docs/operations.md']));
    const broken: string[] = [];
    for (const file of files) {
      for (const { line, target } of await relativeLinks(file)) {
        const resolved = path.resolve(path.dirname(file), target.split('#')[0]!);
        const inside = !path.relative(root, resolved).startsWith('..');
        const exists = await access(resolved).then(() => true, () => false);
        if (!inside || !exists) broken.push(`${file}:${line} ${target}${inside ? '' : ' (outside the repository)'}`);
      }
    }
    expect(broken).toEqual([]);
  });
});
