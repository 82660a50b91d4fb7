/**
 * WebSocket sessions honour backpressure on input (issue 12, item 4): a process that does not
 * read its stdin, or a port that does not read, makes berthd stop reading the client's socket
 * instead of buffering everything the client sends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { log } from '../../src/log.js';
import { RC_V5, RC_V4 } from '../../src/streaming/protocol.js';
import { Channel, encodeChannelMessage, servePortForwardWs, serveRemoteCommandWs } from '../../src/streaming/websocket.js';
import type { StreamingBackend } from '../../src/streaming/types.js';

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), what);
}

async function server(onConnection: (ws: WebSocket) => void) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  wss.on('connection', onConnection);
  const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`;
  const close = () =>
    new Promise<void>((r) => {
      for (const c of wss.clients) c.terminate();
      wss.close(() => r());
    });
  return { url, close };
}

const readAll = (r: Readable) =>
  new Promise<number>((resolve) => {
    let n = 0;
    r.on('data', (d: Buffer) => (n += d.length));
    r.once('end', () => resolve(n));
  });

/** Waits until the client's send queue stops shrinking (the server reads no more, or took all). */
async function settled(client: WebSocket): Promise<number> {
  let last = -1;
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 100));
    if (client.bufferedAmount === last) return last;
    last = client.bufferedAmount;
  }
  return last;
}

const buffered = (r: Readable & { writableLength?: number }) => r.readableLength + (r.writableLength ?? 0);

test('exec stdin: a process that does not read makes berthd stop reading, not buffer', async () => {
  let stdin: (Readable & { writableLength?: number }) | undefined;
  let finish!: (v: { exitCode: number }) => void;
  const backend = {
    exec: (_id: string, _cmd: string[], io: { stdin?: Readable }) => {
      stdin = io.stdin;
      return new Promise<{ exitCode: number }>((r) => (finish = r));
    },
  } as unknown as StreamingBackend;
  const srv = await server((ws) => {
    void serveRemoteCommandWs({
      ws,
      protocol: RC_V5,
      request: { kind: 'exec', request: { containerId: 'c', cmd: ['cat'], tty: false, stdin: true, stdout: true, stderr: false } },
      backend,
      log,
    });
  });
  const client = new WebSocket(srv.url, [RC_V5]);
  try {
    await new Promise((r) => client.once('message', r)); // the ready message
    await until(() => stdin !== undefined, 'exec started');
    const chunk = Buffer.alloc(64 * 1024, 1);
    const total = 256; // 16 MiB
    for (let i = 0; i < total; i++) client.send(encodeChannelMessage(Channel.STDIN, chunk, false));
    // The client's own send queue stays full: berthd has stopped reading.
    const pending = await settled(client);
    assert.ok(pending > 4 * 1024 * 1024, `client still has ${pending} bytes to send`);
    assert.ok(buffered(stdin!) < 1024 * 1024, `berthd buffers ${buffered(stdin!)} bytes of stdin`);
    // A reader that catches up gets everything.
    const got = readAll(stdin!);
    client.send(Buffer.from([Channel.CLOSE, Channel.STDIN]));
    assert.equal(await got, total * chunk.length);
    finish({ exitCode: 0 });
  } finally {
    client.terminate();
    await srv.close();
  }
});

test('port-forward: a port that does not read makes berthd stop reading, not buffer', async () => {
  let channel: Duplex | undefined;
  let finish!: () => void;
  const backend = {
    portForward: (_id: string, _port: number, stream: Duplex) => {
      channel = stream;
      return new Promise<void>((r) => (finish = r));
    },
  } as unknown as StreamingBackend;
  const srv = await server((ws) => {
    void servePortForwardWs({ ws, protocol: RC_V4, podSandboxId: 'p', ports: [80], backend, log });
  });
  const client = new WebSocket(srv.url, [RC_V4]);
  // Registered before any await: the server starts the session on the upgrade request, which can
  // be before the client has read the 101 reply; sending then throws (readyState CONNECTING).
  const opened = new Promise<void>((resolve, reject) => {
    client.once('open', () => resolve());
    client.once('error', reject);
  });
  try {
    await opened;
    await until(() => channel !== undefined, 'port-forward started');
    const chunk = Buffer.alloc(64 * 1024, 2);
    const total = 256;
    for (let i = 0; i < total; i++) client.send(encodeChannelMessage(0, chunk, false));
    const pending = await settled(client);
    assert.ok(pending > 4 * 1024 * 1024, `client still has ${pending} bytes to send`);
    assert.ok(channel!.readableLength < 1024 * 1024, `berthd buffers ${channel!.readableLength} bytes for the port`);
    let n = 0;
    channel!.on('data', (d: Buffer) => (n += d.length));
    await until(() => n === total * chunk.length, `the port got ${n} bytes`);
    finish();
  } finally {
    client.terminate();
    await srv.close();
  }
});
