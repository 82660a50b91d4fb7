// Pull observations reach observers through the image service's diagnostics channel, per
// service, without the service's pull() being replaced; an observer cannot fail a pull.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ImageService } from '../../src/core/images/service.js';
import { observePulls, type PullObservation } from '../../src/metrics/index.js';
import { hasCode } from '../../src/errors.js';

// pull('') is refused before the service touches its stores, so no stores are needed.
const service = (): ImageService => new ImageService({} as never);

test('a refused pull is observed once by its own service observer, with its error', async () => {
  const a = service();
  const b = service();
  const seenA: PullObservation[] = [];
  const seenB: PullObservation[] = [];
  const stopA = observePulls(a, (o) => seenA.push(o));
  const stopB = observePulls(b, (o) => seenB.push(o));
  try {
    assert.equal(a.pull, ImageService.prototype.pull, 'pull() is not wrapped');
    await assert.rejects(a.pull('k8s.io', ''), (e: unknown) => hasCode(e, 'image.empty_reference'));
    assert.equal(seenA.length, 1);
    assert.equal(seenB.length, 0, "another service's observer sees nothing");
    const o = seenA[0]!;
    assert.equal(o.ok, false);
    assert.equal(o.bytes, 0);
    assert.equal(o.ref, '');
    assert.match(o.error ?? '', /image reference is required/);
    assert.ok(o.durationMs >= 0 && o.startMs > 0);
  } finally {
    stopA();
    stopB();
  }
  await assert.rejects(a.pull('k8s.io', ''));
  assert.equal(seenA.length, 1, 'nothing after unsubscribing');
});

test('an observer that throws does not change what pull() answers', async () => {
  const a = service();
  const stop = observePulls(a, () => {
    throw new Error('observer bug');
  });
  try {
    await assert.rejects(a.pull('k8s.io', ''), (e: unknown) => hasCode(e, 'image.empty_reference'));
  } finally {
    stop();
  }
});
