/**
 * docs/ARCHITECTURE.md's layout ("Layers and import direction") against the tree: every folder
 * and module at the top of src/, every folder of src/core/ and src/cri/ and every module at the
 * top of src/cri/ is named there, and nothing named there is missing from the tree; the layer
 * map of eslint.config.js (BASE, LAYERS) covers the same top-level entries, so a new folder
 * cannot escape the `berth/layers` rule or the document.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const repo = process.cwd();
const src = join(repo, 'src');

/** The fenced block of the section "Layers and import direction". */
function layersBlock(): string[] {
  const doc = readFileSync(join(repo, 'docs/ARCHITECTURE.md'), 'utf8');
  const section = doc.split(/^## /m).find((s) => s.startsWith('Layers and import direction'));
  assert.ok(section, 'docs/ARCHITECTURE.md has a section "Layers and import direction"');
  const block = /```\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(block, 'the section holds the layout as a fenced block');
  return block.split('\n');
}

/** Entries of a folder as the document spells them: `name/` for folders, `name.ts` for modules. */
function entries(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() || (e.isFile() && e.name.endsWith('.ts')))
    .map((e) => (e.isDirectory() ? `${e.name}/` : e.name))
    .sort();
}

/** Lines of the block from the one that starts with `head` up to the next top-level line. */
function part(lines: string[], head: string): string {
  const i = lines.findIndex((l) => l.startsWith(head));
  assert.ok(i >= 0, `the layout has a line for ${head}`);
  const out = [lines[i]!];
  for (const l of lines.slice(i + 1)) {
    if (/^\S/.test(l)) break;
    out.push(l);
  }
  return out.join('\n');
}

const named = (text: string, entry: string): boolean => new RegExp(`(^|[\\s,(])${entry.replace(/[.]/g, '\\.')}(?=[\\s,):]|$)`, 'm').test(text);

test('every top-level entry of src/ is in the layout, and every top-level name of the layout exists', () => {
  const lines = layersBlock();
  const text = lines.join('\n');
  const tree = entries(src);
  assert.deepEqual(
    tree.filter((e) => !named(text, e)),
    [],
    'in src/ but not in docs/ARCHITECTURE.md',
  );
  // A line that starts at column 0 names a layer or base modules (comma-separated) in its
  // first column, which ends at a run of spaces.
  const documented = lines
    .filter((l) => /^\S/.test(l))
    .flatMap((l) => [...l.split(/\s{2,}/)[0]!.matchAll(/(?:^|,\s*)([a-z][\w-]*(?:\/|\.ts))/g)].map((m) => m[1]!));
  assert.ok(documented.length > 10, 'the layout lines were found');
  assert.deepEqual(
    documented.filter((e) => !tree.includes(e)),
    [],
    'in docs/ARCHITECTURE.md but not in src/',
  );
});

test("core/'s and cri/'s folders, and cri/'s top-level modules, are the ones the layout names", () => {
  const lines = layersBlock();
  for (const layer of ['core', 'cri']) {
    const text = part(lines, `${layer}/`);
    const tree = entries(join(src, layer)).filter((e) => layer === 'cri' || e.endsWith('/'));
    assert.deepEqual(
      tree.filter((e) => !named(text, e)),
      [],
      `in src/${layer}/ but not in its part of the layout`,
    );
    const documented = [...text.matchAll(/(?:^|[\s,(])([a-z][\w-]*\/)(?=[\s,):])/gm)].map((m) => m[1]!).filter((e) => e !== `${layer}/`);
    assert.deepEqual(
      documented.filter((e) => !tree.includes(e)),
      [],
      `named in src/${layer}/'s part of the layout but not a folder there`,
    );
  }
});

test("eslint.config.js's layer map covers exactly the top-level entries of src/", async () => {
  const { BASE, LAYERS } = (await import(pathToFileURL(join(repo, 'eslint.config.js')).href)) as { BASE: string[]; LAYERS: Record<string, string[]> };
  const tree = entries(src).map((e) => e.replace(/(\/|\.ts)$/, ''));
  // bin/ launchers may import anything: the rule does not apply to them.
  const mapped = new Set([...BASE, ...Object.keys(LAYERS), 'bin']);
  assert.deepEqual(
    tree.filter((e) => !mapped.has(e)),
    [],
    'in src/ but in neither BASE nor LAYERS',
  );
  assert.deepEqual(
    [...mapped].filter((e) => !tree.includes(e)),
    [],
    'in the layer map but not in src/',
  );
  for (const [layer, deps] of Object.entries(LAYERS)) {
    for (const d of deps) assert.ok(d in LAYERS, `${layer} may use ${d}, which is not a layer`);
  }
});

/** src/ files, recursively, without the generated api/. */
function sources(dir = src): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return p === join(src, 'api') ? [] : sources(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

test('the shared helpers live once: keyed lock, undo stack, mount(2)/umount2(2) bindings', () => {
  const files = sources().map((p) => ({ rel: p.slice(src.length + 1), text: readFileSync(p, 'utf8') }));
  const where = (re: RegExp) => files.filter((f) => re.test(f.text)).map((f) => f.rel);
  assert.deepEqual(where(/lib\.func\('int mount\(/), ['mount.ts'], 'mount(2) is bound in mount.ts only');
  assert.deepEqual(where(/'int umount2\(/), ['mount.ts'], 'umount2(2) is bound in mount.ts only');
  assert.deepEqual(where(/^export class KeyedLock\b|class \w*(Lock|Mutex)\b/m), ['keyed-lock.ts'], 'one keyed lock');
  assert.deepEqual(where(/^export class Cleanup\b|class \w*(Cleanup|Undo)\w*\b/m), ['cleanup.ts'], 'one undo stack');
});
