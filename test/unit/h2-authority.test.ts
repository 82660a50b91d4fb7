/** The client→server HTTP/2 filter that makes socket-path authorities acceptable to nghttp2. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import http2 from 'node:http2';
import { connect, createServer, Socket, type Server } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  acceptConnection,
  AuthorityFilter,
  authorityAccepted,
  encodeLiteralBlock,
  FilteredConnection,
  MAX_HEADER_BLOCK,
  type ConnectionMode,
} from '../../src/cri/server/h2-authority.js';

const require = createRequire(import.meta.url);
interface H {
  name: string;
  value: string;
  neverIndex: boolean;
}
const hpack = require('hpack.js') as {
  decompressor: { create(o: { table: { maxSize: number } }): { write(b: Buffer): void; execute(): void; read(): H | null } };
};

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}
function parseFrames(b: Buffer): Frame[] {
  const out: Frame[] = [];
  let off = 0;
  while (off < b.length) {
    const len = b.readUIntBE(off, 3);
    out.push({ type: b[off + 3]!, flags: b[off + 4]!, stream: b.readUInt32BE(off + 5), payload: b.subarray(off + 9, off + 9 + len) });
    off += 9 + len;
  }
  assert.equal(off, b.length, 'output ends on a frame boundary');
  return out;
}

function decodeAll(blocks: Buffer[]): H[][] {
  const d = hpack.decompressor.create({ table: { maxSize: 4096 } });
  return blocks.map((b) => {
    d.write(b);
    d.execute();
    const hs: H[] = [];
    for (let h = d.read(); h !== null; h = d.read()) hs.push(h);
    return hs;
  });
}

const hdr = (name: string, value: string, neverIndex = false): H => ({ name, value, neverIndex });
const request = (authority: string) => [
  hdr(':method', 'POST'),
  hdr(':scheme', 'http'),
  hdr(':path', '/runtime.v1.RuntimeService/Version'),
  hdr(':authority', authority),
  hdr('te', 'trailers'),
  hdr('secret', 'x', true),
];
const settings = frame(0x4, 0, 0, Buffer.alloc(0));

function feedBytewise(f: AuthorityFilter, input: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < input.length; i++) parts.push(...f.feed(input.subarray(i, i + 1)));
  return Buffer.concat(parts);
}

test('authorities nghttp2 refuses are recognised; host names, addresses and ports are not touched', () => {
  for (const ok of ['localhost', 'localhost:80', 'berth.sock', '127.0.0.1:10010', '[::1]:443', '[fe80::1%eth0]', 'a-b_c~d'])
    assert.ok(authorityAccepted(ok), ok);
  for (const bad of ['', '/run/berth/berth.sock', 'unix:///run/x.sock', 'a b', '%2Frun%2Fx', 'h\u00e9'])
    assert.ok(!authorityAccepted(bad), JSON.stringify(bad));
});

test('a connection whose authorities are fine passes byte for byte', () => {
  const input = Buffer.concat([
    PREFACE,
    settings,
    frame(0x1, 0x4 | 0x1, 1, encodeLiteralBlock(request('localhost'), false)),
    frame(0x0, 0x1, 1, Buffer.from('data')),
  ]);
  const f = new AuthorityFilter();
  assert.deepEqual(feedBytewise(f, input), input);
  assert.equal(f.rewritten, 0);
});

test('a socket-path authority in a padded, prioritised block split over CONTINUATION frames is rewritten', () => {
  const block = encodeLiteralBlock(request('/run/berth/berth.sock'), false);
  const pad = 7;
  const prio = Buffer.from([0x80, 0, 0, 3, 200]);
  const firstPart = block.subarray(0, 10);
  const headers = frame(0x1, 0x8 | 0x20 | 0x1, 1, Buffer.concat([Buffer.from([pad]), prio, firstPart, Buffer.alloc(pad)]));
  const cont1 = frame(0x9, 0, 1, block.subarray(10, 30));
  const cont2 = frame(0x9, 0x4, 1, block.subarray(30));
  const second = frame(0x1, 0x4, 3, encodeLiteralBlock(request('/run/berth/berth.sock'), false));
  const f = new AuthorityFilter();
  const out = feedBytewise(f, Buffer.concat([PREFACE, settings, headers, cont1, cont2, second]));
  assert.deepEqual(out.subarray(0, PREFACE.length), PREFACE);
  const frames = parseFrames(out.subarray(PREFACE.length));
  assert.deepEqual(
    frames.map((x) => x.type),
    [0x4, 0x1, 0x1],
  );
  const [, h1, h2] = frames as [Frame, Frame, Frame];
  assert.equal(h1.flags, 0x20 | 0x1 | 0x4, 'priority and end-stream kept, padding dropped, one frame');
  assert.deepEqual(h1.payload.subarray(0, 5), prio);
  assert.equal(h1.payload[5], 0x20, 'first rewritten block starts with a table size update to 0');
  assert.equal(h2.stream, 3);
  assert.notEqual(h2.payload[0], 0x20, 'only the first rewritten block resets the table');
  const [b1, b2] = decodeAll([h1.payload.subarray(5), h2.payload]);
  const expected = request('localhost');
  assert.deepEqual(b1, expected);
  assert.deepEqual(b2, expected);
  assert.equal(f.rewritten, 2);
});

test('a rewritten block larger than one frame goes out as HEADERS + CONTINUATION', () => {
  const hs = [...request(''), hdr('x-big', 'v'.repeat(40_000))];
  const f = new AuthorityFilter();
  const out = Buffer.concat(f.feed(Buffer.concat([PREFACE, frame(0x1, 0x4, 1, encodeLiteralBlock(hs, false))])));
  const frames = parseFrames(out.subarray(PREFACE.length));
  assert.deepEqual(
    frames.map((x) => [x.type, x.flags & 0x4]),
    [
      [0x1, 0],
      [0x9, 0],
      [0x9, 0x4],
    ],
  );
  for (const fr of frames) assert.ok(fr.payload.length <= 16_384);
  const [decoded] = decodeAll([Buffer.concat(frames.map((x) => x.payload))]);
  assert.equal(decoded!.find((h) => h.name === ':authority')?.value, 'localhost');
  assert.equal(decoded!.find((h) => h.name === 'x-big')?.value.length, 40_000);
});

test('an invalid host header is dropped, a valid one kept', () => {
  const f = new AuthorityFilter();
  const out = Buffer.concat(f.feed(Buffer.concat([PREFACE, frame(0x1, 0x4, 1, encodeLiteralBlock([...request('localhost'), hdr('host', '/x.sock')], false))])));
  const [decoded] = decodeAll([parseFrames(out.subarray(PREFACE.length))[0]!.payload]);
  assert.equal(
    decoded!.some((h) => h.name === 'host'),
    false,
  );
  assert.equal(decoded!.find((h) => h.name === ':authority')?.value, 'localhost');
});

test('bytes that are not HTTP/2 pass unchanged; an oversized header block is refused', () => {
  const f = new AuthorityFilter();
  const junk = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.deepEqual(Buffer.concat(f.feed(junk)), junk);
  const g = new AuthorityFilter();
  g.feed(PREFACE);
  const chunk = Buffer.alloc(16_000);
  g.feed(frame(0x1, 0, 1, chunk));
  assert.throws(() => {
    for (let i = 0; i * chunk.length <= MAX_HEADER_BLOCK; i++) g.feed(frame(0x9, 0, 1, chunk));
  }, /header block larger than/);
});

test('a block HPACK cannot decode is passed on untouched (nghttp2 judges it) and parsing stops', () => {
  const f = new AuthorityFilter();
  const bad = frame(0x1, 0x4, 1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]));
  const after = frame(0x0, 0x1, 1, Buffer.from('x'));
  const later = frame(0x1, 0x4, 3, encodeLiteralBlock(request('/run/berth/berth.sock'), false));
  const input = Buffer.concat([PREFACE, bad, after, later]);
  assert.deepEqual(Buffer.concat(f.feed(input)), input);
  assert.equal(f.rewritten, 0);
});

// ---------------------------------------------------------------- acceptConnection

interface Served {
  path: string;
  modes: ConnectionMode[];
  handed: unknown[];
  accepted: Socket[];
  close(): Promise<void>;
}

/** An HTTP/2 server behind acceptConnection on a unix socket; it echoes the :authority it got. */
async function serve(): Promise<Served> {
  const dir = mkdtempSync(join(tmpdir(), 'h2-accept-'));
  const path = join(dir, 's.sock');
  const h2 = http2.createServer();
  h2.on('stream', (stream, headers) => {
    stream.respond({ ':status': 200, 'x-authority': String(headers[':authority']) });
    stream.end('ok');
  });
  const modes: ConnectionMode[] = [];
  const handed: unknown[] = [];
  const accepted: Socket[] = [];
  const net: Server = createServer((sock) => {
    accepted.push(sock);
    acceptConnection(sock, (conn, mode) => {
      modes.push(mode);
      handed.push(conn);
      h2.emit('connection', conn);
    });
  });
  await new Promise<void>((r) => net.listen(path, r));
  return {
    path,
    modes,
    handed,
    accepted,
    close: async () => {
      for (const s of accepted) s.destroy();
      await new Promise<void>((r) => net.close(() => r()));
      h2.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function get(session: http2.ClientHttp2Session, authority: string, body?: string): Promise<{ authority: string | undefined; rst: number }> {
  return new Promise((resolve) => {
    const req = session.request({ ':method': 'POST', ':path': '/', ':authority': authority });
    let got: string | undefined;
    req.on('response', (h) => {
      got = h['x-authority'] as string | undefined;
    });
    req.on('error', () => undefined);
    req.resume();
    req.on('close', () => resolve({ authority: got, rst: req.rstCode ?? 0 }));
    req.end(body);
  });
}

test('a client whose first request has an accepted authority is handed over as the raw socket, and is served', async () => {
  const s = await serve();
  const session = http2.connect('http://localhost', { createConnection: () => connect(s.path) });
  try {
    for (let i = 0; i < 3; i++) assert.deepEqual(await get(session, 'localhost', 'request body'), { authority: 'localhost', rst: 0 });
    assert.deepEqual(s.modes, ['native']);
    assert.equal(s.handed[0], s.accepted[0], 'the HTTP/2 server got the accepted socket itself, not a wrapper');
  } finally {
    session.destroy();
    await s.close();
  }
});

test('a client whose first request carries a socket path stays filtered and every request is served', async () => {
  const s = await serve();
  const session = http2.connect('http://localhost', { createConnection: () => connect(s.path) });
  try {
    for (const a of ['/run/berth/berth.sock', 'localhost', '']) {
      assert.deepEqual(await get(session, a, 'x'), { authority: 'localhost', rst: 0 }, `authority ${JSON.stringify(a)}`);
    }
    assert.deepEqual(s.modes, ['filtered']);
    assert.ok(s.handed[0] instanceof FilteredConnection);
  } finally {
    session.destroy();
    await s.close();
  }
});

/** Reads whole frames off a raw socket. */
function frameReader(sock: Socket): () => Promise<Frame> {
  let buf = Buffer.alloc(0);
  const waiting: (() => void)[] = [];
  sock.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    for (const w of waiting.splice(0)) w();
  });
  return async () => {
    for (;;) {
      if (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
        const len = buf.readUIntBE(0, 3);
        const f = { type: buf[3]!, flags: buf[4]!, stream: buf.readUInt32BE(5), payload: buf.subarray(9, 9 + len) };
        buf = buf.subarray(9 + len);
        return f;
      }
      await new Promise<void>((r) => waiting.push(r));
    }
  };
}

test('a client that sends nothing before the server preface (grpc-go) gets one and is answered', async () => {
  const s = await serve();
  const sock = connect(s.path);
  try {
    const next = frameReader(sock);
    sock.write(Buffer.concat([PREFACE, settings]));
    const first = await next();
    assert.equal(first.type, 0x4, 'the first server frame is SETTINGS');
    assert.equal(first.flags & 0x1, 0);
    // Like grpc-go: ACK the server's SETTINGS, then the request.
    sock.write(Buffer.concat([frame(0x4, 0x1, 0, Buffer.alloc(0)), frame(0x1, 0x4 | 0x1, 1, encodeLiteralBlock(request('localhost'), false))]));
    const seen: Frame[] = [];
    for (;;) {
      const f = await next();
      seen.push(f);
      if (f.type === 0x4 && !(f.flags & 0x1)) sock.write(frame(0x4, 0x1, 0, Buffer.alloc(0)));
      assert.notEqual(f.type, 0x7, `GOAWAY ${f.payload.subarray(4, 8).toString('hex')}`);
      assert.notEqual(f.type, 0x3, 'RST_STREAM');
      if (f.stream === 1 && f.flags & 0x1) break;
    }
    assert.ok(
      seen.some((f) => f.type === 0x1 && f.stream === 1),
      'response HEADERS on stream 1',
    );
    assert.deepEqual(s.modes, ['native']);
  } finally {
    sock.destroy();
    await s.close();
  }
});
