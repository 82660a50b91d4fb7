import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server } from 'node:net';
import { StreamingServer } from '../../src/streaming/index.js';
import type { StreamingBackend } from '../../src/streaming/types.js';

const backend = {} as StreamingBackend;

function connects(hostPort: string): Promise<boolean> {
  const u = new URL(`http://${hostPort}`);
  return new Promise((resolve) => {
    const s = connect(Number(u.port), u.hostname);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

test('StreamingServer.rebind: new URLs name the new address, the old listener closes; a busy address changes nothing', async () => {
  const s = new StreamingServer({ address: '127.0.0.1:0', backend });
  await s.start();
  const busy: Server = createServer();
  try {
    const first = new URL(s.getExec({ containerId: 'c1', cmd: ['true'], tty: false, stdin: false, stdout: true, stderr: false }));
    assert.equal(first.hostname, '127.0.0.1');
    // A connection open before the rebind stays open after it.
    const held = connect(Number(first.port), first.hostname);
    await new Promise((r, j) => held.once('connect', r).once('error', j));

    await s.rebind('127.0.0.2:0');
    const second = new URL(s.getExec({ containerId: 'c1', cmd: ['true'], tty: false, stdin: false, stdout: true, stderr: false }));
    assert.equal(second.hostname, '127.0.0.2');
    assert.equal(await connects(second.host), true);
    assert.equal(await connects(first.host), false, 'the old address no longer accepts');
    assert.equal(held.destroyed, false, 'an open connection is not cut');
    held.destroy();

    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as { port: number }).port;
    await assert.rejects(s.rebind(`127.0.0.1:${port}`), /EADDRINUSE/);
    assert.equal(new URL(s.getExec({ containerId: 'c1', cmd: ['true'], tty: false, stdin: false, stdout: true, stderr: false })).host, second.host);
    assert.equal(await connects(second.host), true);
  } finally {
    busy.close();
    await s.stop();
  }
});
