// YoungGc: scavenges once per `every` bytes counted, does nothing without a gc; V8's gc is found.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { YoungGc, v8MinorGc } from '../../src/core/unpack/young-gc.js';

test('YoungGc asks for a minor GC once per `every` bytes', () => {
  const calls: unknown[] = [];
  const young = new YoungGc(2 << 20, (o) => void calls.push(o));
  for (let i = 0; i < 5; i++) young.add(1 << 20);
  assert.deepEqual(calls, [{ type: 'minor' }, { type: 'minor' }]);
});

test('YoungGc does nothing without a gc', () => {
  assert.doesNotThrow(() => new YoungGc(1, null).add(10));
});

test("V8's gc is found without --expose-gc, and a minor GC runs", () => {
  const gc = v8MinorGc();
  assert.equal(typeof gc, 'function');
  assert.doesNotThrow(() => gc!({ type: 'minor' }));
});
