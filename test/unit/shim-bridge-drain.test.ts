// CloseIO's stdin drain (src/shim/bridge.ts drainFifo): it takes what the FIFO holds, at most
// the pipe's size, so a writer that keeps writing after CloseIO can neither keep the shim's
// synchronous loop going nor make it queue without bound; a real FIFO gives up all it held.
// A stdin socket already destroyed (its fd closed, the number maybe reused) is never read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants as C, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { Bridge, drainFifo } from '../../src/shim/bridge.js';
import { pipeSize } from '../../src/shim/libc.js';

test('a writer that never stops: the drain ends after the limit', () => {
  let reads = 0;
  let queued = 0;
  const total = drainFifo(
    (b) => {
      // Never empty (a writer as fast as the reader); stop the old endless loop after a while.
      if (++reads > 10_000) throw new Error('still reading');
      b.fill(0x61);
      return b.length;
    },
    256 * 1024,
    (d) => (queued += d.length),
  );
  assert.equal(total, 256 * 1024);
  assert.equal(queued, 256 * 1024);
  assert.ok(reads <= 5, `${reads} reads`);
});

test('an empty FIFO (EAGAIN) or end (0) stops the drain at once', () => {
  const eagain = Object.assign(new Error('EAGAIN'), { code: 'EAGAIN' });
  assert.equal(
    drainFifo(
      () => {
        throw eagain;
      },
      65536,
      () => assert.fail('nothing to write'),
    ),
    0,
  );
  assert.equal(
    drainFifo(
      () => 0,
      65536,
      () => assert.fail('nothing to write'),
    ),
    0,
  );
});

test('a real FIFO: everything it held comes out, in order, bounded by its size', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-drain-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'stdin');
  execFileSync('mkfifo', [path]);
  const fd = openSync(path, C.O_RDWR | C.O_NONBLOCK);
  t.after(() => closeSync(fd));
  const size = pipeSize(fd);
  assert.ok(size !== undefined && size >= 4096, `pipe size ${size}`);
  const data = Buffer.alloc(size - 1);
  for (let i = 0; i < data.length; i++) data[i] = i % 251;
  assert.equal(writeSync(fd, data), data.length);
  const got: Buffer[] = [];
  const n = drainFifo(
    (b) => readSync(fd, b, 0, b.length, null),
    size,
    (d) => got.push(d),
  );
  assert.equal(n, data.length);
  assert.ok(Buffer.concat(got).equals(data));
});

test('CloseIO after the stdin socket was destroyed never reads its old fd number (it may be another file now)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-drain-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'other');
  execFileSync('mkfifo', [path]);
  // Another stream's FIFO, holding its data, under the number the dead socket had.
  const other = openSync(path, C.O_RDWR | C.O_NONBLOCK);
  t.after(() => closeSync(other));
  writeSync(other, 'not yours');
  const dead = new net.Socket();
  dead.destroy();
  const written: Buffer[] = [];
  let closed = 0;
  const b = Object.assign(Object.create(Bridge.prototype) as object, {
    session: { write: async (d: Buffer) => void written.push(d), closeStdin: async () => void closed++ },
    stdinSrc: dead,
    stdinFd: other,
    outs: [],
  });
  (b as unknown as Bridge).closeStdin();
  assert.deepEqual(written, [], 'nothing read');
  assert.equal(closed, 1, 'stdin still closed');
  const buf = Buffer.alloc(64);
  assert.equal(buf.toString('utf8', 0, readSync(other, buf, 0, 64, null)), 'not yours', 'the other stream keeps its data');
});
