// PodSandboxStats' network counters (src/cri/observe/sandbox-stats.ts podInterfaces) come only
// from a pid that is in the pod's pinned netns: a recorded pid that died and was reused by a
// process elsewhere (here: this test process, in the host's netns) is not read. The read of
// /proc/<pid>/net/dev is capped (readCapped), cut after a whole line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { podInterfaces, readCapped } from '../../src/cri/observe/sandbox-stats.js';
import type { SandboxRecord } from '../../src/core/metadata/records.js';

const sandbox = (o: Partial<SandboxRecord>) => ({ id: 'p', state: 'ready', ...o }) as SandboxRecord;

test('a recorded pid outside the pod netns (reused) is not read', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-netstats-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // The pin of a netns this process is not in (no nsfs file: nsenter fails on it too).
  const pin = join(dir, 'net');
  writeFileSync(pin, '');
  assert.equal(await podInterfaces(sandbox({ pid: process.pid, netnsPath: pin })), undefined, 'the pause pid');
  assert.equal(await podInterfaces(sandbox({ netnsPath: pin }), [process.pid]), undefined, 'a container pid');
});

test('a pid in the pod netns is read', async () => {
  // This process's own netns stands for the pin.
  const ifs = await podInterfaces(sandbox({ pid: process.pid, netnsPath: '/proc/self/ns/net' }));
  assert.ok(Array.isArray(ifs), 'counters read');
  assert.ok(!ifs.some((i) => i.name === 'lo'), 'loopback left out');
});

test('a vanished pid is no error (the counters then come through the pin, nsenter)', async () => {
  await assert.doesNotReject(podInterfaces(sandbox({ pid: 2 ** 22 + 12345, netnsPath: '/proc/self/ns/net' }), [2 ** 22 + 12346]));
});

test('readCapped keeps at most max bytes, cut after the last whole line', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-capped-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const f = join(dir, 'dev');
  const line = 'eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n';
  writeFileSync(f, line.repeat(10_000));
  const text = readCapped(f, 100_000)!;
  assert.ok(text.length <= 100_000);
  assert.ok(text.endsWith('\n'));
  assert.equal(text, line.repeat(Math.floor(100_000 / line.length)));
  assert.equal(readCapped(f, 10 * line.length * 10_000), line.repeat(10_000), 'a smaller file whole');
  assert.equal(readCapped(join(dir, 'missing'), 10), undefined);
});
