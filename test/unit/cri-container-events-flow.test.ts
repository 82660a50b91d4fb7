// GetContainerEvents handler flow without root: the stream's headers (`open()`) go out only once
// the handler is subscribed, so a client that waits for them misses no event it causes after;
// events of other namespaces are not sent; cancelling the call unsubscribes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getContainerEvents } from '../../src/cri/container/events.js';
import type { ContainerEvent } from '../../src/cri/server/runtime-context.js';
import { newTestContext } from '../helpers/fakes/context.js';

const NS = 'k8s.io';
const event = (namespace: string, containerId: string): ContainerEvent => ({
  namespace,
  containerId,
  sandboxId: 'gone',
  kind: 'CREATED',
  createdAt: 1n,
});

test('GetContainerEvents sends its headers once subscribed: an event published at that moment is delivered', async (t) => {
  const rt = await newTestContext(t);
  const ac = new AbortController();
  const written: Array<{ containerId?: string }> = [];
  let opened = 0;
  const listening = () => rt.ctx.events.listenerCount('event');
  const running = getContainerEvents(rt.ctx)(
    { $typeName: 'runtime.v1.GetEventsRequest' } as never,
    (msg) => (written.push(msg as { containerId?: string }), true),
    {
      namespace: NS,
      signal: ac.signal,
      open: () => {
        opened++;
        // What a client does on the headers: cause an event right away.
        assert.equal(listening(), 1, 'subscribed before the headers go out');
        rt.ctx.events.publish(event(NS, 'right-after-headers'));
        rt.ctx.events.publish(event('other-ns', 'not-mine'));
      },
    },
  );
  const until = async (ok: () => boolean) => {
    for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setImmediate(r));
  };
  await until(() => written.length >= 1);
  assert.equal(opened, 1);
  assert.deepEqual(
    written.map((w) => w.containerId),
    ['right-after-headers'],
    'the event right after the headers arrives; another namespace’s does not',
  );
  ac.abort();
  await running;
  assert.equal(listening(), 0, 'a cancelled stream unsubscribes');
});

test('GetContainerEvents on a call already cancelled neither subscribes nor opens', async (t) => {
  const rt = await newTestContext(t);
  const ac = new AbortController();
  ac.abort();
  let opened = false;
  await getContainerEvents(rt.ctx)({ $typeName: 'runtime.v1.GetEventsRequest' } as never, () => true, {
    namespace: NS,
    signal: ac.signal,
    open: () => (opened = true),
  });
  assert.equal(opened, false);
  assert.equal(rt.ctx.events.listenerCount('event'), 0);
});
