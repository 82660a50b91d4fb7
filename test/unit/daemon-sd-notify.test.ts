import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { notifyAddress, notifier, sdNotify, takeNotifySocket } from '../../src/daemon/sd-notify.js';
import { bindNotifySocket } from '../helpers/notify-socket.js';

test('notifyAddress: filesystem paths get a NUL, @names are abstract (leading NUL, no terminator)', () => {
  const p = notifyAddress('/run/systemd/notify');
  assert.equal(p.addr.readUInt16LE(0), 1);
  assert.equal(p.len, 2 + '/run/systemd/notify'.length + 1);
  assert.equal(p.addr.subarray(2, p.len - 1).toString(), '/run/systemd/notify');
  const a = notifyAddress('@sd-notify');
  assert.equal(a.len, 2 + '@sd-notify'.length);
  assert.equal(a.addr[2], 0);
  assert.equal(a.addr.subarray(3, a.len).toString(), 'sd-notify');
  assert.throws(() => notifyAddress('relative/path'), /neither an absolute path nor an @abstract name/);
  assert.throws(() => notifyAddress(`/${'x'.repeat(200)}`), /too long/);
});

test('sdNotify delivers one datagram; a notifier without a socket does nothing; failures go to onError', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-sdn-'));
  const sock = bindNotifySocket(join(dir, 'n.sock'));
  try {
    sdNotify(sock.path, 'READY=1\nSTATUS=hello');
    assert.equal(await sock.waitFor((m) => m.startsWith('READY=1')), 'READY=1\nSTATUS=hello');
    const errs: Error[] = [];
    notifier(undefined, (e) => errs.push(e)).notify('READY=1');
    notifier(join(dir, 'missing.sock'), (e) => errs.push(e)).notify('READY=1');
    assert.equal(errs.length, 1);
    assert.match(errs[0]!.message, /sendto .*missing\.sock: errno 2/);
  } finally {
    sock.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('takeNotifySocket removes NOTIFY_SOCKET from the environment children get', () => {
  const saved = process.env.NOTIFY_SOCKET;
  process.env.NOTIFY_SOCKET = '/run/x.sock';
  try {
    assert.equal(takeNotifySocket(), '/run/x.sock');
    assert.equal(process.env.NOTIFY_SOCKET, undefined);
    assert.equal(takeNotifySocket(), undefined);
  } finally {
    if (saved !== undefined) process.env.NOTIFY_SOCKET = saved;
  }
});
