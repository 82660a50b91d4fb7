// systemClock: a delay longer than one Node timer can hold (2^31-1 ms) is waited in steps and
// fires at its full length; Node's own setTimeout fires such a delay after 1 ms, which made a
// 30-day StopContainer grace period or ExecSync timeout end at once.
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { sleep, systemClock, TIMER_MAX_MS } from '../../src/cri/server/ports.js';

test('a 30-day delay on the real clock does not fire within the next timers turns (Node alone fires it after 1 ms)', async () => {
  let fired = false;
  const s = sleep(systemClock, 30 * 24 * 3600 * 1000);
  void s.done.then(() => (fired = true));
  // A 1 ms timer set after it: an overflowed timer (1 ms too) would fire no later than this one.
  await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setImmediate(r));
  s.cancel();
  assert.equal(fired, false);
});

test('a delay past TIMER_MAX_MS fires at its full length, not before; cancel stops it between steps', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    let fired = 0;
    const total = TIMER_MAX_MS + 5000;
    systemClock.setTimeout(() => fired++, total);
    mock.timers.tick(TIMER_MAX_MS);
    assert.equal(fired, 0, 'not at the first step');
    mock.timers.tick(4999);
    assert.equal(fired, 0, '1 ms before the end');
    mock.timers.tick(1);
    assert.equal(fired, 1);

    const h = systemClock.setTimeout(() => fired++, 2 * TIMER_MAX_MS + 10);
    mock.timers.tick(TIMER_MAX_MS + 1);
    systemClock.clearTimeout(h);
    mock.timers.tick(2 * TIMER_MAX_MS);
    assert.equal(fired, 1, 'cancelled after its first step');

    systemClock.setTimeout(() => fired++, 5);
    mock.timers.tick(5);
    assert.equal(fired, 2, 'a short delay is one plain timer');
  } finally {
    mock.timers.reset();
  }
});
