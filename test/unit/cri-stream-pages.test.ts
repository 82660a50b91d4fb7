/** Paging of the streaming list RPCs: every item in exactly one page, no empty page. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writePages } from '../../src/cri/server/stream-pages.js';

const ctx = () => ({ signal: new AbortController().signal, namespace: 'k8s.io' });

test('items go out in pages of the given size, in order, each once; none means no page', async () => {
  const pages: number[][] = [];
  await writePages(
    [1, 2, 3, 4, 5],
    (items) => items,
    (p) => (pages.push(p), true),
    ctx(),
    2,
  );
  assert.deepEqual(pages, [[1, 2], [3, 4], [5]]);
  const none: unknown[] = [];
  await writePages(
    [],
    (items) => items,
    (p) => (none.push(p), true),
    ctx(),
    2,
  );
  assert.deepEqual(none, []);
});

test('a cancelled call stops writing', async () => {
  const ac = new AbortController();
  const pages: number[][] = [];
  await writePages(
    [1, 2, 3],
    (items) => items,
    (p) => (pages.push(p), ac.abort(), true),
    { signal: ac.signal, namespace: 'k8s.io' },
    1,
  );
  assert.deepEqual(pages, [[1]]);
});
