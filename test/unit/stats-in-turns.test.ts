/**
 * inTurns (ListContainerStats / ListPodSandboxStats): each item's synchronous work starts in its
 * own event-loop turn, so work that arrives meanwhile runs between items, not after the list;
 * results keep the items' order and a failure fails the whole call without an unhandled rejection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inTurns } from '../../src/cri/observe/container-stats.js';

test('other work queued while the list runs is served between items', async () => {
  const seen: Array<number | string> = [];
  const out = await inTurns([1, 2, 3], async (i) => {
    seen.push(i);
    if (i === 1) setImmediate(() => seen.push('other call'));
    return i * 2;
  });
  assert.deepEqual(out, [2, 4, 6]);
  assert.deepEqual(seen, [1, 'other call', 2, 3]);
});

test('items stay in flight together and keep their order', async () => {
  const release: Array<() => void> = [];
  const p = inTurns([0, 1, 2], (i) => new Promise<number>((resolve) => release.push(() => resolve(i))));
  while (release.length < 3) await new Promise((r) => setImmediate(r));
  for (const r of [...release].reverse()) r();
  assert.deepEqual(await p, [0, 1, 2]);
});

test('a failing item fails the call, and no rejection is left unhandled', async () => {
  let unhandled = 0;
  const onUnhandled = (): void => {
    unhandled++;
  };
  process.on('unhandledRejection', onUnhandled);
  try {
    await assert.rejects(
      inTurns([1, 2, 3], async (i) => {
        if (i === 1) throw new Error('shim gone');
        return i;
      }),
      /shim gone/,
    );
    await new Promise((r) => setImmediate(r));
    assert.equal(unhandled, 0);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});
