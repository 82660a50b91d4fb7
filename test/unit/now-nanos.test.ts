// nowNanos (src/cri/server/runtime-context.ts) when the wall clock is stepped back (NTP, a
// resumed VM): it never goes back, and it moves on by the time that really passed, so a CPU
// rate over two samples taken seconds apart is not taken over a few nanoseconds. Its own file:
// the mocked clocks move the process-wide last value.
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { nowNanos } from '../../src/cri/server/runtime-context.js';

test('a wall clock stepped back 10 s: timestamps advance by the monotonic time elapsed, never back', () => {
  const wall = Date.now();
  let dateNow = wall;
  let mono = process.hrtime.bigint();
  mock.method(Date, 'now', () => dateNow);
  mock.method(performance, 'now', () => 0.5);
  mock.method(process.hrtime, 'bigint', () => mono);
  try {
    const t1 = nowNanos();
    assert.equal(t1, BigInt(wall) * 1_000_000n + 500_000n);
    // 5 s pass; meanwhile the clock was stepped back by 10 s.
    mono += 5_000_000_000n;
    dateNow = wall + 5000 - 10_000;
    const t2 = nowNanos();
    assert.equal(t2 - t1, 5_000_000_000n, 'the 5 s that passed (not 1 ns)');
    mono += 2_000_000_000n;
    dateNow += 2000;
    assert.equal(nowNanos() - t2, 2_000_000_000n);
    // The wall clock is ahead again: it is followed.
    mono += 60_000_000_000n;
    dateNow = wall + 70_000;
    assert.equal(nowNanos(), BigInt(wall + 70_000) * 1_000_000n + 500_000n);
  } finally {
    mock.restoreAll();
  }
});
