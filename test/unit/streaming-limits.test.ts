/**
 * The streaming server's limits (issue 12, item 4): sessions per server, streams and forwarded
 * connections per session, unread input per session, and the idle timeout. Each is checked as a
 * client sees it: an HTTP 429 naming the limit, a message on the port-forward error stream, a
 * closed connection; and the server keeps serving afterwards.
 */
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { StreamingServer } from '../../src/streaming/server.js';
import { IdleWatcher } from '../../src/streaming/idle.js';
import { MAX_SESSION_BUFFERED, type SpdyStream } from '../../src/streaming/spdy/connection.js';
import { maxForwardedPairs } from '../../src/streaming/portforward-spdy.js';
import { encodeFrame, FrameReader, type Frame } from '../../src/streaming/spdy/frames.js';
import { HeaderCompressor } from '../../src/streaming/spdy/headers.js';
import type { StreamIO, StreamingBackend } from '../../src/streaming/types.js';
import { HttpError, spdyExec, spdyUpgrade } from '../helpers/spdy-client.js';
import { until } from '../helpers/process.js';

const RC_PROTOCOLS = ['v4.channel.k8s.io'];

/** exec echoes its command name or waits until the client leaves; port-forward dials an echo server. */
class Backend implements StreamingBackend {
  dials = 0;
  aborted = 0;
  stdins: NonNullable<StreamIO['stdin']>[] = [];
  constructor(private readonly echoPort: () => number) {}
  async exec(_id: string, cmd: string[], io: StreamIO): Promise<{ exitCode: number }> {
    if (cmd[0] === 'echo') {
      io.stdout?.write(cmd.slice(1).join(' '));
      return { exitCode: 0 };
    }
    // 'wait': a process that never reads its stdin and runs until the client goes away.
    if (io.stdin) this.stdins.push(io.stdin);
    await new Promise<void>((r) => (io.signal.aborted ? r() : io.signal.addEventListener('abort', () => r(), { once: true })));
    this.aborted++;
    return { exitCode: 137 };
  }
  async attach(): Promise<void> {}
  portForward(_pod: string, _port: number, stream: Duplex): Promise<void> {
    this.dials++;
    return new Promise((resolve, reject) => {
      const sock = net.connect(this.echoPort(), '127.0.0.1');
      sock.once('connect', () => {
        stream.pipe(sock);
        sock.pipe(stream);
      });
      sock.once('error', reject);
      sock.once('close', () => resolve());
      stream.once('close', () => sock.destroy());
    });
  }
}

async function setup(limits: ConstructorParameters<typeof StreamingServer>[0]['limits']) {
  const echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  const backend = new Backend(() => (echo.address() as net.AddressInfo).port);
  const server = new StreamingServer({ address: '127.0.0.1:0', backend, limits });
  await server.start();
  const cleanup = async () => {
    await server.stop();
    await new Promise<void>((r) => echo.close(() => r()));
  };
  return { server, backend, cleanup };
}

const execUrl = (server: StreamingServer, cmd: string[], stdin = false) =>
  server.getExec({ containerId: 'c1', cmd, tty: false, stdin, stdout: true, stderr: false });

test('idle watcher: closes after four quiet quarters, not while bytes move', () => {
  mock.timers.enable({ apis: ['setInterval'] });
  try {
    let bytes = 0;
    let idle = 0;
    const w = new IdleWatcher(
      () => bytes,
      1000,
      () => idle++,
    );
    // Traffic in every quarter for 10 s: never idle.
    for (let i = 0; i < 40; i++) {
      bytes += 10;
      mock.timers.tick(250);
    }
    assert.equal(idle, 0);
    // Quiet: idle after the fourth quiet sample, once.
    mock.timers.tick(750);
    assert.equal(idle, 0);
    mock.timers.tick(250);
    assert.equal(idle, 1);
    mock.timers.tick(10_000);
    assert.equal(idle, 1);
    w.stop();
    // 0 turns the timeout off.
    const off = new IdleWatcher(
      () => 0,
      0,
      () => idle++,
    );
    mock.timers.tick(100_000);
    assert.equal(idle, 1);
    off.stop();
  } finally {
    mock.timers.reset();
  }
});

test('sessions beyond max_connections get HTTP 429 naming the limit; a slot frees when one ends', async () => {
  const { server, cleanup } = await setup({ maxConnections: 2 });
  try {
    const a = await spdyUpgrade(execUrl(server, ['wait']), RC_PROTOCOLS);
    const b = await spdyUpgrade(execUrl(server, ['wait']), RC_PROTOCOLS);
    await until(() => server.sessionCount === 2, 'two sessions open');
    const url = execUrl(server, ['echo', 'third']);
    const refused = await spdyUpgrade(url, RC_PROTOCOLS).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(refused instanceof HttpError, `refused: ${String(refused)}`);
    assert.equal(refused.status, 429);
    assert.match(refused.body, /streaming server busy: 2 sessions open, the limit is 2 \(streaming\.max_connections\)/);
    // The refusal did not consume the URL: once a session ends, the same URL works.
    a.conn.destroy();
    await until(() => server.sessionCount === 1, 'one session left');
    const r = await spdyExec(url, { protocols: RC_PROTOCOLS });
    assert.equal(r.stdout, 'third');
    b.conn.destroy();
    await until(() => server.sessionCount === 0, 'all sessions closed');
  } finally {
    await cleanup();
  }
});

test('a session idle for the idle timeout is closed, and the process it ran is told the client left', async () => {
  const { server, backend, cleanup } = await setup({ idleTimeoutMs: 200 });
  try {
    const { conn } = await spdyUpgrade(execUrl(server, ['wait']), RC_PROTOCOLS);
    const closed = new Promise<void>((r) => conn.once('close', () => r()));
    conn.createStream({ streamtype: 'error' });
    conn.createStream({ streamtype: 'stdout' });
    // Nothing more is sent either way: the server closes the session.
    await closed;
    await until(() => backend.aborted === 1, 'the exec saw its client leave');
    await until(() => server.sessionCount === 0, 'the session is no longer counted');
    // And the server goes on serving.
    assert.equal((await spdyExec(execUrl(server, ['echo', 'still', 'here']), { protocols: RC_PROTOCOLS })).stdout, 'still here');
  } finally {
    await cleanup();
  }
});

/** A raw port-forward client that opens `n` stream pairs the way client-go does (error, then data). */
async function openPairs(url: string, n: number) {
  const res = await new Promise<{ socket: net.Socket }>((resolve, reject) => {
    const u = new URL(url);
    const socket = net.connect(Number(u.port), u.hostname, () => {
      socket.write(
        `POST ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n`,
      );
    });
    let head = '';
    const onData = (c: Buffer) => {
      head += c.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      if (!head.startsWith('HTTP/1.1 101')) reject(new Error(head));
      const rest = Buffer.from(head.slice(end + 4), 'latin1');
      if (rest.length) socket.unshift(rest);
      resolve({ socket });
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
  const { socket } = res;
  const frames: Frame[] = [];
  const reader = new FrameReader();
  socket.on('data', (c: Buffer) => frames.push(...reader.push(c)));
  const comp = new HeaderCompressor();
  const wire: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const errorId = 4 * i + 1;
    const dataId = 4 * i + 3;
    const h = (type: string) => comp.compress({ streamtype: type, port: '80', requestid: String(i) });
    // The error stream is half-closed at once (FIN), as client-go does.
    wire.push(encodeFrame({ type: 'syn_stream', streamId: errorId, associatedStreamId: 0, priority: 0, slot: 0, flags: 1, headerBlock: h('error') }));
    wire.push(encodeFrame({ type: 'syn_stream', streamId: dataId, associatedStreamId: 0, priority: 0, slot: 0, flags: 0, headerBlock: h('data') }));
  }
  socket.write(Buffer.concat(wire));
  comp.close();
  return { socket, frames };
}

test('2000 port-forward connections in one session: the first ones are forwarded, the rest refused with a message, memory stays bounded', async () => {
  const maxStreams = 64;
  const { server, backend, cleanup } = await setup({ maxStreamsPerConnection: maxStreams });
  try {
    const rssBefore = process.memoryUsage().rss;
    const { socket, frames } = await openPairs(server.getPortForward({ podSandboxId: 'p1', port: [] }), 2000);
    const limit = maxForwardedPairs(maxStreams);
    const resets = () => frames.filter((f) => f.type === 'rst_stream' && f.streamId % 4 === 3);
    // Every pair beyond the limit: a message on its error stream, its data stream reset.
    await until(() => resets().length >= 2000 - limit, `${2000 - limit} data streams refused (saw ${resets().length})`, 60_000);
    assert.equal(backend.dials, limit, 'only the pairs within the limit were dialed');
    const said = new Map<number, string>();
    const expected = `port-forward: ${limit} connections already forwarded in this session, the most it may have (streaming.max_streams_per_connection / 2); close some and retry`;
    await until(
      () => {
        said.clear();
        for (const f of frames) if (f.type === 'data' && f.streamId % 4 === 1) said.set(f.streamId, (said.get(f.streamId) ?? '') + f.data.toString());
        return [...said.values()].filter((m) => m === expected).length === 2000 - limit;
      },
      'every refused pair was told why on its error stream',
      60_000,
    );
    assert.equal(said.size, 2000 - limit, 'the forwarded pairs got no error text');
    const growth = process.memoryUsage().rss - rssBefore;
    assert.ok(growth < 128 * 1024 * 1024, `RSS grew ${growth} bytes`);
    socket.destroy();
    await until(() => server.sessionCount === 0, 'session closed');
    assert.equal((await spdyExec(execUrl(server, ['echo', 'ok']), { protocols: RC_PROTOCOLS })).stdout, 'ok');
  } finally {
    await cleanup();
  }
});

test('exec stdin from /dev/zero into a process that does not read: the session holds at most its cap unread', async () => {
  const { server, backend, cleanup } = await setup({});
  try {
    const { conn, socket } = await spdyUpgrade(execUrl(server, ['wait'], true), RC_PROTOCOLS, { sendWindowUpdates: false });
    const error = conn.createStream({ streamtype: 'error' });
    error.end();
    const stdin = conn.createStream({ streamtype: 'stdin' });
    conn.createStream({ streamtype: 'stdout' }).end();
    await until(() => backend.stdins.length === 1, 'exec started');
    // Like `< /dev/zero`: 64 MiB handed to the client at once; only TCP can hold it back.
    const total = 64 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < total / chunk.length; i++) stdin.write(chunk);
    const held0 = backend.stdins[0] as SpdyStream;
    await until(() => held0.readableLength >= 256 * 1024, 'the server has taken stdin up to its hold mark');
    // Wait until the bytes on the wire stop moving: the server no longer reads its socket.
    const tcp = socket as net.Socket;
    let last = -1;
    for (let quiet = 0; quiet < 5;) {
      await new Promise((r) => setTimeout(r, 100));
      quiet = tcp.bytesWritten === last ? quiet + 1 : 0;
      last = tcp.bytesWritten;
    }
    const held = held0.readableLength;
    assert.ok(held <= MAX_SESSION_BUFFERED + 256 * 1024, `berthd holds ${held} bytes of unread stdin`);
    assert.ok(tcp.bytesWritten < total / 4, `the client got only ${tcp.bytesWritten} of ${total} bytes onto the wire`);
    conn.destroy();
    await until(() => backend.aborted === 1, 'the exec saw its client leave');
  } finally {
    await cleanup();
  }
});

test('setLimits (config reload) applies to sessions opened afterwards; open ones go on', async () => {
  const { server, cleanup } = await setup({ maxConnections: 4 });
  try {
    const a = await spdyUpgrade(execUrl(server, ['wait']), RC_PROTOCOLS);
    await until(() => server.sessionCount === 1, 'one session open');
    server.setLimits({ maxConnections: 1 });
    const refused = await spdyUpgrade(execUrl(server, ['echo', 'x']), RC_PROTOCOLS).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(refused instanceof HttpError && refused.status === 429, `refused: ${String(refused)}`);
    assert.match(refused.body, /the limit is 1 \(streaming\.max_connections\)/);
    assert.ok(!a.conn.isClosed, 'the open session was left alone');
    a.conn.destroy();
    await until(() => server.sessionCount === 0, 'closed');
  } finally {
    await cleanup();
  }
});
