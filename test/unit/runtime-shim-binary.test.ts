/**
 * Which shim binary berthd runs: its own berth-shim (shipped beside it) even when another
 * install's containerd-shim-berth-v1 is on PATH; other shim types from PATH; an explicit
 * handler `shim` always wins. Also the shim handle's state table.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoBinDir, resolveShimBinary } from '../../src/runtime/shim-binary.js';
import { canShimTransition } from '../../src/runtime/shim.js';

test('berth-shim is the one beside berthd, never another install found on PATH', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-path-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const name of ['containerd-shim-berth-v1', 'containerd-shim-runc-v2']) {
    writeFileSync(join(dir, name), '#!/bin/sh\n');
    chmodSync(join(dir, name), 0o755);
  }
  const saved = process.env.PATH;
  process.env.PATH = `${dir}:${saved ?? ''}`;
  t.after(() => {
    process.env.PATH = saved;
  });
  const own = repoBinDir();
  assert.ok(own, 'the repo has a bin/ dir');
  assert.equal(resolveShimBinary({ type: 'io.containerd.berth.v1' }), join(own, 'containerd-shim-berth-v1'));
  assert.equal(resolveShimBinary({ type: 'io.containerd.runc.v2' }), join(dir, 'containerd-shim-runc-v2'));
  assert.equal(resolveShimBinary({ type: 'io.containerd.berth.v1', shim: '/opt/x/shim' }), '/opt/x/shim');
});

test('shim handle states: a lost shim is examined, then serves again or is dead; dead and detached are final', () => {
  assert.ok(canShimTransition('ready', 'examining'));
  assert.ok(canShimTransition('examining', 'ready'));
  assert.ok(canShimTransition('examining', 'dead'));
  assert.ok(canShimTransition('ready', 'retiring'));
  assert.ok(canShimTransition('retiring', 'detached'));
  assert.equal(canShimTransition('ready', 'dead'), false, 'a shim is declared dead only after it was examined');
  assert.equal(canShimTransition('retiring', 'ready'), false);
  for (const to of ['ready', 'examining', 'retiring', 'detached'] as const) {
    assert.equal(canShimTransition('dead', to), false);
    assert.equal(canShimTransition('detached', to), false);
  }
});
