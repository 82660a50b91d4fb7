import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtemp, rm, stat, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import koffi from 'koffi';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { RequestSchema, ResponseSchema } from '../../src/api/ttrpc/ttrpc_pb.js';
import { TtrpcClient } from '../../src/ttrpc/client.js';
import { TtrpcServer, ensurePrivateDir, type CallContext, type MethodHandler } from '../../src/ttrpc/server.js';
import { requireUid } from '../../src/ttrpc/peercred.js';
import { FrameDecoder, encodeFrame, MessageType, type FrameHeader } from '../../src/ttrpc/frame.js';
import { errors, isBerthError, StatusCode } from '../../src/errors.js';
import { setLogSink } from '../../src/log.js';

setLogSink(() => {}); // keep expected warnings (refused peers, garbage frames) out of test output

const enc = (s: string): Uint8Array => Buffer.from(s);
const dec = (b: Uint8Array): string => Buffer.from(b).toString();

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-ttrpc-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A server with an "echo.Echo" service listening in a fresh temp dir; closed after the test. */
async function startServer(
  t: TestContext,
  methods: Record<string, MethodHandler> = {},
  opts: ConstructorParameters<typeof TtrpcServer>[0] = {},
): Promise<{ server: TtrpcServer; path: string }> {
  const dir = await tempDir(t);
  const path = join(dir, 'ttrpc.sock');
  const server = new TtrpcServer(opts);
  server.register('echo.Echo', { Echo: (_ctx, p) => p, ...methods });
  await server.listen(path);
  t.after(() => server.shutdown());
  return { server, path };
}

async function connect(t: TestContext, path: string): Promise<TtrpcClient> {
  const c = await TtrpcClient.connect(path);
  t.after(() => c.close());
  return c;
}

/** A raw socket speaking frames by hand, for malformed-input tests. */
async function rawConnect(t: TestContext, path: string) {
  const sock = net.connect(path);
  t.after(() => sock.destroy());
  await new Promise<void>((res, rej) => sock.once('connect', res).once('error', rej));
  const frames: { h: FrameHeader; p: Buffer }[] = [];
  const waiters: (() => void)[] = [];
  const d = new FrameDecoder({
    frame: (h, p) => {
      frames.push({ h, p: Buffer.from(p) });
      waiters.splice(0).forEach((w) => w());
    },
    oversized: () => assert.fail('server sent an oversized frame'),
    protocolError: (e) => assert.fail(e),
  });
  sock.on('data', (c: Buffer) => d.push(c));
  sock.on('error', () => {});
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  return {
    sock,
    closed,
    async nextFrame(): Promise<{ h: FrameHeader; p: Buffer }> {
      while (frames.length === 0) await new Promise<void>((r) => waiters.push(r));
      return frames.shift()!;
    },
  };
}

function requestFrame(streamId: number, service: string, method: string, payload: Uint8Array, timeoutNano = 0n): Buffer {
  return encodeFrame(streamId, MessageType.Request, 0, toBinary(RequestSchema, create(RequestSchema, { service, method, payload, timeoutNano })));
}

test('a call round-trips over a unix socket and the socket file is 0600', async (t) => {
  const { path } = await startServer(t);
  const c = await connect(t, path);
  assert.equal(dec(await c.call('echo.Echo', 'Echo', enc('ping'))), 'ping');
  assert.equal((await c.call('echo.Echo', 'Echo', new Uint8Array(0))).length, 0);
  assert.equal((await stat(path)).mode & 0o777, 0o600);
});

test('100 concurrent calls on one connection are answered out of order and each gets its own answer', async (t) => {
  const arrived: { n: number; release: () => void }[] = [];
  let allArrived!: () => void;
  const everyone = new Promise<void>((r) => (allArrived = r));
  const { path } = await startServer(t, {
    Slow: async (_ctx, p) => {
      await new Promise<void>((release) => {
        arrived.push({ n: Number(dec(p)), release });
        if (arrived.length === 100) allArrived();
      });
      return enc(`re:${dec(p)}`);
    },
  });
  const c = await connect(t, path);
  const finished: number[] = [];
  const calls = Array.from({ length: 100 }, (_, n) =>
    c.call('echo.Echo', 'Slow', enc(String(n))).then((r) => {
      finished.push(n);
      return dec(r);
    }),
  );
  await everyone;
  assert.equal(c.inFlight, 100);
  // Release in reverse arrival order, one per tick, so responses really go out reversed.
  for (const a of [...arrived].reverse()) {
    a.release();
    await sleep(0);
  }
  const results = await Promise.all(calls);
  assert.deepEqual(
    results,
    Array.from({ length: 100 }, (_, n) => `re:${n}`),
  );
  assert.deepEqual(
    finished,
    Array.from({ length: 100 }, (_, n) => 99 - n),
  );
});

test('a call past its timeout fails locally with DeadlineExceeded and the handler sees its signal abort', async (t) => {
  let seen: CallContext | undefined;
  let handlerAborted!: (reason: unknown) => void;
  const aborted = new Promise<unknown>((r) => (handlerAborted = r));
  const { path } = await startServer(t, {
    Hang: (ctx) => {
      seen = ctx;
      return new Promise((_res, rej) =>
        ctx.signal.addEventListener('abort', () => {
          handlerAborted(ctx.signal.reason);
          rej(ctx.signal.reason);
        }),
      );
    },
  });
  const c = await connect(t, path);
  const started = Date.now();
  // The handler never answers: only the deadline can end this call (no bound on how long it took).
  await assert.rejects(c.call('echo.Echo', 'Hang', enc(''), { timeoutMs: 80 }), (e: unknown) => isBerthError(e, 'DeadlineExceeded'));
  const reason = await aborted;
  assert.ok(isBerthError(reason, 'DeadlineExceeded'), 'server-side deadline from timeout_nano');
  assert.ok(seen?.deadline !== undefined && seen.deadline > started);
  assert.equal(c.inFlight, 0);
  assert.equal(dec(await c.call('echo.Echo', 'Echo', enc('still fine'))), 'still fine');
});

test('the server answers DeadlineExceeded when timeout_nano passes and the handler gives up', async (t) => {
  const { path } = await startServer(t, {
    Hang: (ctx) => new Promise((_res, rej) => ctx.signal.addEventListener('abort', () => rej(new DOMException('aborted', 'AbortError')))),
  });
  const raw = await rawConnect(t, path);
  raw.sock.write(requestFrame(1, 'echo.Echo', 'Hang', enc(''), 50_000_000n));
  const f = await raw.nextFrame();
  assert.equal(f.h.streamId, 1);
  assert.equal(f.h.type, MessageType.Response);
  assert.equal(fromBinary(ResponseSchema, f.p).status?.code, StatusCode.DeadlineExceeded);
});

test('an aborted call rejects with Canceled and frees its slot', async (t) => {
  const { path } = await startServer(t, { Hang: () => new Promise(() => {}) });
  const c = await connect(t, path);
  const ac = new AbortController();
  const p = c.call('echo.Echo', 'Hang', enc(''), { signal: ac.signal });
  ac.abort();
  await assert.rejects(p, (e: unknown) => isBerthError(e, 'Canceled'));
  assert.equal(c.inFlight, 0);
  await assert.rejects(c.call('echo.Echo', 'Echo', enc(''), { signal: ac.signal }), (e: unknown) => isBerthError(e, 'Canceled'));
});

test('unknown methods and services answer Unimplemented (code 12) naming what is missing', async (t) => {
  const { path } = await startServer(t);
  const c = await connect(t, path);
  await assert.rejects(c.call('echo.Echo', 'Nope', enc('')), (e: unknown) => {
    assert.ok(isBerthError(e, 'Unimplemented'));
    assert.equal(e.status, 12);
    assert.match(e.message, /echo\.Echo.*Nope/);
    return true;
  });
  await assert.rejects(c.call('no.Such', 'Thing', enc('')), (e: unknown) => isBerthError(e, 'Unimplemented') && /no\.Such/.test(e.message));
});

test('handler errors arrive as BerthErrors of the same kind; other throws become Internal', async (t) => {
  const { path } = await startServer(t, {
    Missing: () => {
      throw errors.notFound('container.not_found', 'container abc not found');
    },
    Exists: async () => {
      throw errors.alreadyExists('shim.container_exists', 'already there');
    },
    Precondition: () => {
      throw errors.failedPrecondition('shim.bad_state', 'not running');
    },
    Boom: () => {
      throw new TypeError('kaput');
    },
  });
  const c = await connect(t, path);
  await assert.rejects(c.call('echo.Echo', 'Missing', enc('')), (e: unknown) => isBerthError(e, 'NotFound') && e.message === 'container abc not found');
  await assert.rejects(c.call('echo.Echo', 'Exists', enc('')), (e: unknown) => isBerthError(e, 'AlreadyExists'));
  await assert.rejects(c.call('echo.Echo', 'Precondition', enc('')), (e: unknown) => isBerthError(e, 'FailedPrecondition'));
  await assert.rejects(c.call('echo.Echo', 'Boom', enc('')), (e: unknown) => isBerthError(e, 'Internal') && e.message === 'kaput');
});

test('metadata and peer credentials reach the handler', async (t) => {
  let ctx: CallContext | undefined;
  const { path } = await startServer(t, { Md: (c) => ((ctx = c), new Uint8Array(0)) });
  const c = await connect(t, path);
  await c.call('echo.Echo', 'Md', enc(''), { metadata: { 'containerd-namespace': 'k8s.io', multi: ['a', 'b'] } });
  assert.deepEqual({ ...ctx!.metadata }, { 'containerd-namespace': ['k8s.io'], multi: ['a', 'b'] });
  assert.equal(ctx!.peer?.pid, process.pid);
  assert.equal(ctx!.peer?.uid, process.geteuid!());
});

test('a peer rejected by the credential check is disconnected before any call is served', async (t) => {
  const { path } = await startServer(t, {}, { peerCheck: requireUid(process.geteuid!() + 4242) });
  const c = await connect(t, path);
  await assert.rejects(c.call('echo.Echo', 'Echo', enc('x')), (e: unknown) => isBerthError(e, 'Unavailable'));
  assert.ok(await c.closed);
});

test('an announced 5 MiB frame is answered with ResourceExhausted and both connections keep working', async (t) => {
  const { path } = await startServer(t);
  const raw = await rawConnect(t, path);
  const header = Buffer.alloc(10);
  header.writeUInt32BE(5 * 1024 * 1024, 0);
  header.writeUInt32BE(1, 4);
  header[8] = MessageType.Request;
  raw.sock.write(header);
  const zeros = Buffer.alloc(256 * 1024);
  for (let i = 0; i < 20; i++) raw.sock.write(zeros);
  const f = await raw.nextFrame();
  assert.equal(f.h.streamId, 1);
  const st = fromBinary(ResponseSchema, f.p).status;
  assert.equal(st?.code, StatusCode.ResourceExhausted);
  assert.match(st!.message, /exceed maximum message size/);
  // Same connection: the next request still works.
  raw.sock.write(requestFrame(3, 'echo.Echo', 'Echo', enc('after')));
  const g = await raw.nextFrame();
  assert.equal(g.h.streamId, 3);
  assert.equal(dec(fromBinary(ResponseSchema, g.p).payload), 'after');
  // Another connection too.
  const c = await connect(t, path);
  assert.equal(dec(await c.call('echo.Echo', 'Echo', enc('other'))), 'other');
});

test('a garbage frame closes only that connection', async (t) => {
  const { path } = await startServer(t);
  const good = await connect(t, path);
  const raw = await rawConnect(t, path);
  raw.sock.write('this is not a ttrpc frame at all\n');
  await raw.closed;
  assert.equal(dec(await good.call('echo.Echo', 'Echo', enc('alive'))), 'alive');
  const again = await connect(t, path);
  assert.equal(dec(await again.call('echo.Echo', 'Echo', enc('new'))), 'new');
});

test('an undecodable request, an even stream id and a reused stream id get InvalidArgument on that stream', async (t) => {
  const { path } = await startServer(t);
  const raw = await rawConnect(t, path);
  raw.sock.write(encodeFrame(1, MessageType.Request, 0, Buffer.from([0x0a, 0x7f, 0x01]))); // truncated string field
  raw.sock.write(requestFrame(2, 'echo.Echo', 'Echo', enc('')));
  raw.sock.write(requestFrame(1, 'echo.Echo', 'Echo', enc('')));
  raw.sock.write(requestFrame(5, 'echo.Echo', 'Echo', enc('ok')));
  const got: [number, number | undefined][] = [];
  for (let i = 0; i < 4; i++) {
    const f = await raw.nextFrame();
    got.push([f.h.streamId, fromBinary(ResponseSchema, f.p).status?.code]);
  }
  assert.deepEqual(got, [
    [1, StatusCode.InvalidArgument],
    [2, StatusCode.InvalidArgument],
    [1, StatusCode.InvalidArgument],
    [5, 0],
  ]);
});

test('a half-written frame followed by a disconnect does not disturb the server', async (t) => {
  const { path } = await startServer(t);
  const raw = await rawConnect(t, path);
  const full = requestFrame(1, 'echo.Echo', 'Echo', enc('x'.repeat(100)));
  raw.sock.write(full.subarray(0, 30));
  await sleep(20);
  raw.sock.destroy();
  await raw.closed;
  const c = await connect(t, path);
  assert.equal(dec(await c.call('echo.Echo', 'Echo', enc('fine'))), 'fine');
});

test('pending calls fail with Unavailable when the server shuts down, and the client notices', async (t) => {
  let started!: () => void;
  const inHandler = new Promise<void>((r) => (started = r));
  const { server, path } = await startServer(t, { Hang: () => (started(), new Promise(() => {})) });
  const c = await connect(t, path);
  let closeEvents = 0;
  c.on('close', () => closeEvents++);
  const failed = assert.rejects(c.call('echo.Echo', 'Hang', enc('')), (e: unknown) => isBerthError(e, 'Unavailable') && e.code === 'ttrpc.closed');
  await inHandler;
  await server.shutdown();
  await failed;
  const why = await c.closed;
  assert.ok(isBerthError(why, 'Unavailable'));
  assert.equal(closeEvents, 1);
  assert.equal(c.isOpen, false);
  await assert.rejects(c.call('echo.Echo', 'Echo', enc('')), (e: unknown) => isBerthError(e, 'Unavailable'));
});

test('graceful close lets in-flight calls finish, refuses new connections and removes the socket file', async (t) => {
  let release!: () => void;
  let started!: () => void;
  const inHandler = new Promise<void>((r) => (started = r));
  const { server, path } = await startServer(t, {
    Slow: async () => {
      started();
      await new Promise<void>((r) => (release = r));
      return enc('done');
    },
  });
  const c = await connect(t, path);
  const p = c.call('echo.Echo', 'Slow', enc(''));
  await inHandler;
  // close() stops the listener before its first await: a new connection is refused at once.
  const closing = server.close(5000);
  await assert.rejects(TtrpcClient.connect(path), (e: unknown) => isBerthError(e, 'Unavailable'));
  release();
  assert.equal(dec(await p), 'done');
  await closing;
  await c.closed;
  await assert.rejects(stat(path), { code: 'ENOENT' });
});

test('graceful close gives up on handlers that outlive the timeout', async (t) => {
  let entered!: () => void;
  const inHandler = new Promise<void>((r) => (entered = r));
  const { server, path } = await startServer(t, {
    Hang: () => {
      entered();
      return new Promise(() => {});
    },
  });
  const c = await connect(t, path);
  const failed = assert.rejects(c.call('echo.Echo', 'Hang', enc('')), (e: unknown) => isBerthError(e, 'Unavailable'));
  await inHandler;
  // The handler never returns: close() ends only because it gives up after its timeout.
  await server.close(100);
  await failed;
});

/** A hand-written server: answers each request frame with whatever `reply` returns. */
async function fakeServer(t: TestContext, reply: (h: FrameHeader) => Buffer[]): Promise<string> {
  const dir = await tempDir(t);
  const path = join(dir, 'fake.sock');
  const socks = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    socks.add(s);
    s.on('error', () => {});
    const d = new FrameDecoder({
      frame: (h) => reply(h).forEach((b) => s.write(b)),
      oversized: () => {},
      protocolError: () => s.destroy(),
    });
    s.on('data', (c: Buffer) => d.push(c));
  });
  await new Promise<void>((r) => srv.listen(path, r));
  t.after(() => {
    socks.forEach((s) => s.destroy());
    srv.close();
  });
  return path;
}

test('the client drops a connection that sends an unknown message type and fails its calls', async (t) => {
  const path = await fakeServer(t, (h) => [encodeFrame(h.streamId, 9, 0, Buffer.alloc(0))]);
  const c = await connect(t, path);
  await assert.rejects(c.call('x.X', 'Y', enc('')), (e: unknown) => isBerthError(e, 'Unavailable'));
  const why = await c.closed;
  assert.ok(isBerthError(why, 'Internal') && why.code === 'ttrpc.bad_frame');
});

test('an oversized response fails only its call with ResourceExhausted; the connection stays usable', async (t) => {
  const path = await fakeServer(t, (h) => {
    if (h.streamId === 1) {
      const big = Buffer.alloc(10);
      big.writeUInt32BE(5 * 1024 * 1024, 0);
      big.writeUInt32BE(1, 4);
      big[8] = MessageType.Response;
      return [big, Buffer.alloc(5 * 1024 * 1024)];
    }
    const ok = toBinary(ResponseSchema, create(ResponseSchema, { status: { code: 0 }, payload: enc('small') }));
    return [encodeFrame(h.streamId, MessageType.Response, 0, ok)];
  });
  const c = await connect(t, path);
  await assert.rejects(c.call('x.X', 'Big', enc('')), (e: unknown) => isBerthError(e, 'ResourceExhausted'));
  assert.equal(dec(await c.call('x.X', 'Small', enc(''))), 'small');
  assert.equal(c.isOpen, true);
});

test('listen replaces a stale socket file but refuses to delete a regular file', async (t) => {
  const dir = await tempDir(t);
  const stale = join(dir, 'stale.sock');
  closeFd(bindUnix(stale, false)); // a socket file nobody listens on any more
  assert.ok((await stat(stale)).isSocket());
  const s1 = new TtrpcServer();
  s1.register('echo.Echo', { Echo: (_c, p) => p });
  await s1.listen({ path: stale, mode: 0o660 });
  t.after(() => s1.shutdown());
  assert.equal((await stat(stale)).mode & 0o777, 0o660);
  const c = await connect(t, stale);
  assert.equal(dec(await c.call('echo.Echo', 'Echo', enc('y'))), 'y');

  const regular = join(dir, 'regular');
  await writeFile(regular, 'keep me');
  const s2 = new TtrpcServer();
  await assert.rejects(s2.listen(regular), (e: unknown) => isBerthError(e, 'AlreadyExists'));
  assert.equal(await readFile(regular, 'utf8'), 'keep me');
  await s2.shutdown();
});

test('a server can serve an inherited listening fd', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'inherited.sock');
  const fd = bindUnix(path, true);
  const server = new TtrpcServer();
  server.register('echo.Echo', { Echo: (_c, p) => p });
  await server.listen({ fd }); // the server now owns fd and closes it on shutdown
  t.after(() => server.shutdown());
  const c = await connect(t, path);
  assert.equal(dec(await c.call('echo.Echo', 'Echo', enc('via fd'))), 'via fd');
});

test('ensurePrivateDir creates a 0700 directory and tightens a looser one', async (t) => {
  const dir = await tempDir(t);
  const d = join(dir, 'a', 'b');
  await ensurePrivateDir(d);
  assert.equal((await stat(d)).mode & 0o777, 0o700);
  const loose = join(dir, 'loose');
  await ensurePrivateDir(loose);
  const { chmod } = await import('node:fs/promises');
  await chmod(loose, 0o755);
  await ensurePrivateDir(loose);
  assert.equal((await stat(loose)).mode & 0o777, 0o700);
});

// --- raw unix sockets through libc, to make stale socket files and inherited listening fds ---

const libc = koffi.load('libc.so.6');
const cSocket = libc.func('int socket(int, int, int)') as (d: number, t: number, p: number) => number;
const cBind = libc.func('int bind(int, const void *addr, uint32_t len)') as (fd: number, addr: Buffer, len: number) => number;
const cListen = libc.func('int listen(int, int)') as (fd: number, backlog: number) => number;
const cClose = libc.func('int close(int)') as (fd: number) => number;

function bindUnix(path: string, listen: boolean): number {
  const AF_UNIX = 1;
  const SOCK_STREAM = 1;
  const SOCK_CLOEXEC = 0o2000000;
  const fd = cSocket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert.ok(fd >= 0, 'socket()');
  const addr = Buffer.alloc(110); // struct sockaddr_un
  addr.writeUInt16LE(AF_UNIX, 0);
  addr.write(path, 2);
  assert.equal(cBind(fd, addr, 2 + Buffer.byteLength(path) + 1), 0, 'bind()');
  if (listen) assert.equal(cListen(fd, 16), 0, 'listen()');
  return fd;
}

function closeFd(fd: number): void {
  cClose(fd);
}
