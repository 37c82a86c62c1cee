/**
 * Docs held to the code: every TypeScript block in README.md and docs/*.md must be cut from a
 * file under examples/ (which test/examples.test.ts and friends run), so no sample can rot.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ErrorCode } from '../src/errors.js';

const root = new URL('..', import.meta.url).pathname;

function normalize(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
}

function tsBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(path) : path.endsWith('.ts') ? [path] : [];
  });
}

const exampleLines = filesUnder(join(root, 'examples')).map((file) => ({
  file,
  lines: normalize(readFileSync(file, 'utf8')),
}));

function containsRun(haystack: string[], needle: string[]): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

const docs = [join(root, 'README.md'), ...readdirSafe(join(root, 'docs'))];

function readdirSafe(dir: string): string[] {
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.md'))
        .map((f) => join(dir, f))
    : [];
}

describe('docs samples come from examples/', () => {
  for (const doc of docs) {
    const blocks = tsBlocks(readFileSync(doc, 'utf8'));
    blocks.forEach((block, index) => {
      const name = `${doc.slice(root.length)} block ${index + 1}`;
      test(name, () => {
        const needle = normalize(block);
        const found = exampleLines.some(({ lines }) => containsRun(lines, needle));
        assert.ok(found, `${name} is not cut from any file under examples/:\n${block}`);
      });
    });
  }

  test('the README has TypeScript samples to check', () => {
    assert.ok(tsBlocks(readFileSync(join(root, 'README.md'), 'utf8')).length >= 3);
  });
});

describe('docs held to the code', () => {
  test("the README's quick start is examples/quickstart.ts, whole, so it runs when pasted", () => {
    const program = readFileSync(join(root, 'examples/quickstart.ts'), 'utf8')
      .split('\n')
      .filter((line) => !line.startsWith('//'))
      .join('\n');
    const blocks = tsBlocks(readFileSync(join(root, 'README.md'), 'utf8'));
    const quickStart = blocks.find((block) => block.startsWith('import'));
    assert.ok(quickStart !== undefined, 'no README block starts with an import');
    assert.deepEqual(normalize(quickStart), normalize(program));
  });

  test('docs/errors.md has every error code', () => {
    const catalogue = readFileSync(join(root, 'docs/errors.md'), 'utf8');
    const missing = Object.values(ErrorCode).filter((code) => !catalogue.includes(`\`${code}\``));
    assert.deepEqual(missing, [], 'codes in src/errors.ts with no entry in docs/errors.md');
  });

  test('Python library names appear only in docs/migrating.md', () => {
    const names = /pgnotifpy|pgnotifier|pgpubsub|classic-pg-listener|pygresql/i;
    const offenders = docs
      .filter((doc) => !doc.endsWith('migrating.md'))
      .filter((doc) => names.test(readFileSync(doc, 'utf8')))
      .map((doc) => doc.slice(root.length));
    assert.deepEqual(offenders, []);
  });

  test('Python library names appear nowhere in src/ (the demo names the features instead)', () => {
    const names = /pgnotifpy|pgnotifier|pgpubsub|classic-pg-listener|pygresql/i;
    const offenders = filesUnder(join(root, 'src'))
      .filter((file) => names.test(readFileSync(file, 'utf8')))
      .map((file) => file.slice(root.length));
    assert.deepEqual(offenders, []);
  });
});
