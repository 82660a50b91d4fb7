import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import zlib from 'node:zlib';
import { SPDY3_DICTIONARY } from '../../src/streaming/spdy/dictionary.js';
import { FrameReader, RstStatus, encodeFrame, type Frame } from '../../src/streaming/spdy/frames.js';
import { HeaderCompressor, HeaderDecompressor, MAX_HEADER_BLOCK, adler32, decodeHeaderBlock, encodeHeaderBlock } from '../../src/streaming/spdy/headers.js';
import { MAX_SESSION_BUFFERED, SpdyConnection, type SpdyStream } from '../../src/streaming/spdy/connection.js';

const hex = (b: Buffer) => b.toString('hex');
const inflateAll = (b: Buffer) => zlib.inflateSync(b, { dictionary: SPDY3_DICTIONARY, finishFlush: zlib.constants.Z_SYNC_FLUSH });

test('the SPDY/3 dictionary has the protocol length and DICTID', () => {
  assert.equal(SPDY3_DICTIONARY.length, 1423);
  assert.equal(adler32(SPDY3_DICTIONARY), 0xe3c6a7c2);
  assert.equal(SPDY3_DICTIONARY.subarray(0, 11).toString('latin1'), '\0\0\0\x07options');
  assert.equal(SPDY3_DICTIONARY.subarray(-7).toString('latin1'), ',enq=0.');
});

test('header block encoding matches the SPDY/3 layout byte for byte', () => {
  assert.equal(
    hex(encodeHeaderBlock({ streamType: 'error' })),
    '00000001' + '0000000a' + hex(Buffer.from('streamtype')) + '00000005' + hex(Buffer.from('error')),
  );
});

test('a SYN_STREAM built here has the golden frame header and a zlib block any inflater reads', () => {
  const c = new HeaderCompressor();
  const block = c.compress({ streamtype: 'error' });
  const frame = encodeFrame({ type: 'syn_stream', streamId: 1, associatedStreamId: 0, priority: 0, slot: 0, flags: 0, headerBlock: block });
  const len = 10 + block.length;
  assert.equal(hex(frame.subarray(0, 18)), '80030001' + '00' + len.toString(16).padStart(6, '0') + '00000001' + '00000000' + '0000');
  // zlib header with FDICT and the dictionary's Adler-32, then a segment ending in a sync flush.
  assert.equal(hex(block.subarray(0, 6)), '78bbe3c6a7c2');
  assert.equal(hex(block.subarray(-4)), '0000ffff');
  assert.equal(hex(inflateAll(block)), hex(encodeHeaderBlock({ streamtype: 'error' })));
  // A second block continues the same zlib stream (no second header).
  const block2 = c.compress({ streamtype: 'stdout', port: '80' });
  assert.notEqual(hex(block2.subarray(0, 2)), '78bb');
  assert.equal(
    hex(inflateAll(Buffer.concat([block, block2]))),
    hex(Buffer.concat([encodeHeaderBlock({ streamtype: 'error' }), encodeHeaderBlock({ streamtype: 'stdout', port: '80' })])),
  );
});

test('frames round-trip through the reader even when fed one byte at a time', async () => {
  const c = new HeaderCompressor();
  const frames: Frame[] = [
    { type: 'syn_stream', streamId: 3, associatedStreamId: 0, priority: 2, slot: 0, flags: 1, headerBlock: c.compress({ streamtype: 'stdin' }) },
    { type: 'syn_reply', streamId: 3, flags: 0, headerBlock: c.compress({}) },
    { type: 'data', streamId: 3, flags: 1, data: Buffer.from('payload') },
    { type: 'rst_stream', streamId: 5, status: RstStatus.CANCEL },
    { type: 'settings', flags: 0, entries: [{ id: 7, flags: 0, value: 65536 }] },
    { type: 'ping', id: 7 },
    { type: 'goaway', lastGoodStreamId: 9, status: 0 },
    { type: 'headers', streamId: 3, flags: 0, headerBlock: c.compress({ a: 'b' }) },
    { type: 'window_update', streamId: 0, delta: 1000 },
  ];
  const wire = Buffer.concat(frames.map(encodeFrame));
  const reader = new FrameReader();
  const got: Frame[] = [];
  for (const byte of wire) got.push(...reader.push(Buffer.from([byte])));
  assert.deepEqual(got, frames);
  const d = new HeaderDecompressor();
  try {
    assert.deepEqual({ ...(await d.decompress((got[0] as { headerBlock: Buffer }).headerBlock)) }, { streamtype: 'stdin' });
    assert.deepEqual({ ...(await d.decompress((got[1] as { headerBlock: Buffer }).headerBlock)) }, {});
    assert.deepEqual({ ...(await d.decompress((got[7] as { headerBlock: Buffer }).headerBlock)) }, { a: 'b' });
  } finally {
    d.close();
  }
});

test('control frames have golden bytes', () => {
  assert.equal(hex(encodeFrame({ type: 'ping', id: 1 })), '8003000600000004' + '00000001');
  assert.equal(hex(encodeFrame({ type: 'rst_stream', streamId: 1, status: 5 })), '8003000300000008' + '00000001' + '00000005');
  assert.equal(hex(encodeFrame({ type: 'window_update', streamId: 3, delta: 65536 })), '8003000900000008' + '00000003' + '00010000');
  assert.equal(hex(encodeFrame({ type: 'goaway', lastGoodStreamId: 7, status: 1 })), '8003000700000008' + '00000007' + '00000001');
  assert.equal(hex(encodeFrame({ type: 'data', streamId: 3, flags: 1, data: Buffer.from('hi') })), '00000003' + '01000002' + '6869');
  assert.equal(
    hex(encodeFrame({ type: 'settings', flags: 0, entries: [{ id: 7, flags: 1, value: 65536 }] })),
    '800300040000000c' + '00000001' + '01000007' + '00010000',
  );
});

test('the reader rejects other SPDY versions and oversized frames', () => {
  assert.throws(() => new FrameReader().push(Buffer.from('8002000600000004' + '00000001', 'hex')), /version 2/);
  assert.throws(() => new FrameReader(1024).push(Buffer.from('00000001' + '00010000', 'hex')), /exceeds/);
});

test('the decompressor reads a real zlib stream compressed with the dictionary (what Go peers send)', async () => {
  const deflate = zlib.createDeflate({ dictionary: SPDY3_DICTIONARY, level: 9 });
  const chunks: Buffer[] = [];
  deflate.on('data', (c: Buffer) => chunks.push(c));
  const blockOf = async (h: Record<string, string>): Promise<Buffer> => {
    chunks.length = 0;
    deflate.write(encodeHeaderBlock(h));
    await new Promise<void>((r) => deflate.flush(zlib.constants.Z_SYNC_FLUSH, () => r()));
    await new Promise((r) => setImmediate(r));
    return Buffer.concat(chunks);
  };
  const b1 = await blockOf({ streamtype: 'error', port: '8080', requestid: '0' });
  const b2 = await blockOf({ streamtype: 'data', port: '8080', requestid: '0' });
  assert.equal(hex(b1.subarray(0, 6)), '78f9e3c6a7c2');
  const d = new HeaderDecompressor();
  try {
    assert.deepEqual({ ...(await d.decompress(b1)) }, { streamtype: 'error', port: '8080', requestid: '0' });
    assert.deepEqual({ ...(await d.decompress(b2)) }, { streamtype: 'data', port: '8080', requestid: '0' });
  } finally {
    d.close();
    deflate.close();
  }
});

test('malformed header blocks are rejected', async () => {
  assert.throws(() => decodeHeaderBlock(Buffer.from('000000010000000361', 'hex')), /does not fit/);
  assert.throws(() => decodeHeaderBlock(Buffer.from('00000001000000036161', 'hex').subarray(0, 9)), /does not fit/);
  assert.throws(() => decodeHeaderBlock(Buffer.from('0000000100000009616100000000', 'hex')), /runs past/);
  assert.throws(() => decodeHeaderBlock(Buffer.from('ffffffff', 'hex')), /does not fit/);
  assert.throws(() => decodeHeaderBlock(encodeHeaderBlock({ a: '1' }).subarray(0, 13)), /truncated|runs past/);
  const upper = Buffer.concat([Buffer.from('00000001000000014100000000', 'hex')]);
  assert.throws(() => decodeHeaderBlock(upper), /lowercase/);
  const dup = Buffer.from('00000002' + '00000001' + '61' + '00000000' + '00000001' + '61' + '00000000', 'hex');
  assert.throws(() => decodeHeaderBlock(dup), /duplicate/);
  const d = new HeaderDecompressor();
  try {
    await assert.rejects(d.decompress(Buffer.from('not a zlib stream at all')), /inflate/);
  } finally {
    d.close();
  }
});

/** The first header block of a SPDY zlib stream whose deflated body is `raw` (sync-flushed). */
function firstBlock(raw: Buffer): Buffer {
  const dictId = Buffer.alloc(4);
  dictId.writeUInt32BE(adler32(SPDY3_DICTIONARY), 0);
  return Buffer.concat([
    Buffer.from([0x78, 0xbb]),
    dictId,
    zlib.deflateRawSync(raw, { dictionary: SPDY3_DICTIONARY, finishFlush: zlib.constants.Z_SYNC_FLUSH }),
  ]);
}

const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

test('a header zlib bomb is cut off at the block budget, not inflated on', async () => {
  // One header whose value claims 64 MiB of zeros: ~64 KiB on the wire.
  const head = Buffer.from('00000001' + '00000001' + '61' + '04000000', 'hex');
  const bomb = firstBlock(Buffer.concat([head, Buffer.alloc(64 << 20)]));
  assert.ok(bomb.length < 1 << 20, 'fits one frame');
  const d = new HeaderDecompressor();
  try {
    await assert.rejects(d.decompress(bomb), /more than 262144 bytes/);
    await turns(50);
    assert.ok(d.inflated <= MAX_HEADER_BLOCK + 64 * 1024, `inflation stopped at the budget (inflated ${d.inflated} bytes)`);
    await assert.rejects(d.decompress(Buffer.from([0])), /more than 262144 bytes/, 'the connection stays failed');
  } finally {
    d.close();
  }
});

test('header output past the end of its block is a protocol error, whatever the state', async () => {
  // A complete small block, then 16 MiB more in the same frame: the block is found complete
  // at once, the rest must not be inflated into a buffer nobody bounds.
  const block = encodeHeaderBlock({ streamtype: 'stdin' });
  const d = new HeaderDecompressor();
  try {
    await assert.rejects(d.decompress(firstBlock(Buffer.concat([block, Buffer.alloc(16 << 20)]))), /past the end of its block|more than 262144/);
    await turns(50);
    assert.ok(d.inflated <= MAX_HEADER_BLOCK + 64 * 1024, `inflated ${d.inflated} bytes`);
  } finally {
    d.close();
  }
  const d2 = new HeaderDecompressor();
  try {
    // Two blocks in one frame: the second is output beyond the frame's block.
    await assert.rejects(d2.decompress(firstBlock(Buffer.concat([block, block]))), /past the end of its block/);
  } finally {
    d2.close();
  }
  const d3 = new HeaderDecompressor();
  try {
    // Half a block: incomplete in its frame.
    await assert.rejects(d3.decompress(firstBlock(block.subarray(0, 10))), /incomplete/);
  } finally {
    d3.close();
  }
});

// ---- sessions over a real loopback TCP connection ----

async function pair(serverOpts: { flowControlGraceMs?: number } = {}, clientOpts: { sendWindowUpdates?: boolean } = {}) {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const cs = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  const ss = await accepted;
  const server = new SpdyConnection(ss, { role: 'server', ...serverOpts });
  const client = new SpdyConnection(cs, { role: 'client', ...clientOpts });
  const cleanup = async () => {
    client.destroy();
    server.destroy();
    await new Promise<void>((r) => srv.close(() => r()));
  };
  return { server, client, cleanup, clientSocket: cs };
}

const nextStream = (c: SpdyConnection) => new Promise<SpdyStream>((r) => c.once('stream', r));
const read = (s: SpdyStream) =>
  new Promise<Buffer>((resolve) => {
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.once('end', () => resolve(Buffer.concat(parts)));
  });

test('session: streams carry data both ways with FIN, SYN_REPLY and PING echo', async () => {
  const { server, client, cleanup } = await pair();
  try {
    const incoming = nextStream(server);
    const cstream = client.createStream({ streamtype: 'stdin' });
    const replied = new Promise((r) => cstream.once('reply', r));
    const sstream = await incoming;
    assert.equal(sstream.headers.streamtype, 'stdin');
    await replied;
    const toServer = read(sstream);
    const toClient = read(cstream);
    cstream.end('from client');
    sstream.end('from server');
    assert.equal((await toServer).toString(), 'from client');
    assert.equal((await toClient).toString(), 'from server');
    assert.ok((await client.ping()) >= 0);
  } finally {
    await cleanup();
  }
});

test('session: a flow-controlling peer never has more than its window outstanding', async () => {
  const { server, client, cleanup, clientSocket } = await pair();
  try {
    // Announcing a window is what marks the client as doing flow control.
    clientSocket.write(encodeFrame({ type: 'settings', flags: 0, entries: [{ id: 7, flags: 0, value: 65536 }] }));
    const incoming = nextStream(server);
    const cstream = client.createStream({ streamtype: 'stdout' });
    const sstream = await incoming;
    cstream.pause();
    const total = 200 * 1024;
    sstream.end(Buffer.alloc(total, 1));
    // The server has spent its 64 KiB window and the client holds what it sent.
    await until(() => sstream.sendWindow <= 0 && cstream.readableLength >= 65536, 'the window is spent and its bytes arrived');
    assert.ok(cstream.readableLength <= 65536, `client buffered ${cstream.readableLength} bytes`);
    assert.ok(cstream.readableLength > 0);
    const all = read(cstream);
    cstream.resume();
    assert.equal((await all).length, total);
    assert.equal(server.flowMode, 'enforce');
  } finally {
    await cleanup();
  }
});

test('session: a peer that never sends WINDOW_UPDATE still receives everything (spdystream)', async () => {
  const { server, client, cleanup } = await pair({ flowControlGraceMs: 100 }, { sendWindowUpdates: false });
  try {
    const incoming = nextStream(server);
    const cstream = client.createStream({ streamtype: 'stdout' });
    const sstream = await incoming;
    const all = read(cstream);
    sstream.end(Buffer.alloc(300 * 1024, 2));
    assert.equal((await all).length, 300 * 1024);
    assert.equal(server.flowMode, 'off');
  } finally {
    await cleanup();
  }
});

test('session: RST_STREAM closes the other side and GOAWAY refuses new streams', async () => {
  const { server, client, cleanup } = await pair();
  try {
    const incoming = nextStream(server);
    const cstream = client.createStream({ streamtype: 'data' });
    const sstream = await incoming;
    const reset = new Promise<number>((r) => sstream.once('reset', r));
    cstream.reset(RstStatus.CANCEL);
    assert.equal(await reset, RstStatus.CANCEL);
    assert.ok(sstream.destroyed);

    const gone = once(client, 'goaway');
    server.goAway();
    await gone;
    assert.throws(() => client.createStream({ streamtype: 'x' }), /going away/);
  } finally {
    await cleanup();
  }
});

test('session: a garbage frame makes the server drop the connection', async () => {
  const { server, cleanup, clientSocket } = await pair();
  try {
    const closed = new Promise<void>((r) => server.once('close', () => r()));
    clientSocket.write(Buffer.from('8002000100000004deadbeef', 'hex'));
    await closed;
    assert.ok(server.isClosed);
  } finally {
    await cleanup();
  }
});

/** A raw SPDY client on a socket: frames written by hand, the server's frames decoded. */
async function rawPair(serverOpts: { maxStreams?: number } = {}) {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const cs = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  const ss = await accepted;
  const server = new SpdyConnection(ss, { role: 'server', ...serverOpts });
  const got: Frame[] = [];
  const reader = new FrameReader();
  cs.on('data', (c: Buffer) => got.push(...reader.push(c)));
  const comp = new HeaderCompressor();
  const syn = (id: number) =>
    encodeFrame({
      type: 'syn_stream',
      streamId: id,
      associatedStreamId: 0,
      priority: 0,
      slot: 0,
      flags: 0,
      headerBlock: comp.compress({ streamtype: 'data' }),
    });
  const cleanup = async () => {
    cs.destroy();
    server.destroy();
    await new Promise<void>((r) => srv.close(() => r()));
  };
  return { server, cs, got, syn, cleanup };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), what);
}

test('session: a peer without flow control is slowed by TCP, not buffered without bound', async () => {
  const { server, cs, syn, cleanup } = await rawPair();
  try {
    const incoming = nextStream(server);
    cs.write(syn(1));
    const s = await incoming;
    // 16 MiB at once, ignoring the 64 KiB window (as spdystream does); nobody reads the stream yet.
    const chunk = Buffer.alloc(32 * 1024, 7);
    const total = 512;
    for (let i = 0; i < total; i++) cs.write(encodeFrame({ type: 'data', streamId: 1, flags: i === total - 1 ? 1 : 0, data: chunk }));
    await until(() => server.readsHeld, 'the server stops reading its socket');
    const held = s.readableLength;
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(s.readableLength <= held + 128 * 1024, `buffered ${s.readableLength} bytes`);
    assert.ok(s.readableLength < 1024 * 1024, `buffered ${s.readableLength} bytes, not 16 MiB`);
    // Once the reader catches up, everything arrives.
    const all = await read(s);
    assert.equal(all.length, total * chunk.length);
  } finally {
    await cleanup();
  }
});

test('session: a flow-controlling peer that overruns its window gets FLOW_CONTROL_ERROR', async () => {
  const { server, cs, got, syn, cleanup } = await rawPair();
  try {
    const incoming = nextStream(server);
    // A WINDOW_UPDATE tells the server this peer does flow control.
    cs.write(encodeFrame({ type: 'window_update', streamId: 0, delta: 1 }));
    cs.write(syn(1));
    await incoming;
    const chunk = Buffer.alloc(32 * 1024);
    for (let i = 0; i < 3; i++) cs.write(encodeFrame({ type: 'data', streamId: 1, flags: 0, data: chunk }));
    await until(() => got.some((f) => f.type === 'rst_stream' && f.streamId === 1), 'the stream is reset');
    const rst = got.find((f) => f.type === 'rst_stream' && f.streamId === 1) as { status: number };
    assert.equal(rst.status, RstStatus.FLOW_CONTROL_ERROR);
  } finally {
    await cleanup();
  }
});

test('session: streams beyond the cap are refused', async () => {
  const { server, cs, got, syn, cleanup } = await rawPair({ maxStreams: 8 });
  try {
    let accepted = 0;
    server.on('stream', () => accepted++);
    for (let i = 0; i < 20; i++) cs.write(syn(2 * i + 1));
    await until(() => got.filter((f) => f.type === 'rst_stream').length === 12, '12 streams refused');
    assert.equal(accepted, 8);
    assert.ok(got.filter((f) => f.type === 'rst_stream').every((f) => (f as { status: number }).status === RstStatus.REFUSED_STREAM));
    assert.equal(server.streamCount, 8);
  } finally {
    await cleanup();
  }
});

test('session: many streams each under the per-stream mark still stop the socket at the session cap', async () => {
  const { server, cs, syn, cleanup } = await rawPair();
  try {
    const streams: SpdyStream[] = [];
    server.on('stream', (s) => streams.push(s));
    // 16 streams × 192 KiB = 3 MiB, each below the 256 KiB per-stream mark; nobody reads.
    for (let i = 0; i < 16; i++) cs.write(syn(2 * i + 1));
    const chunk = Buffer.alloc(32 * 1024, 1);
    for (let k = 0; k < 6; k++) for (let i = 0; i < 16; i++) cs.write(encodeFrame({ type: 'data', streamId: 2 * i + 1, flags: 0, data: chunk }));
    await until(() => server.readsHeld, 'the server stops reading its socket');
    assert.ok(server.bufferedTotal() <= MAX_SESSION_BUFFERED + 128 * 1024, `session holds ${server.bufferedTotal()} bytes`);
    assert.ok(streams.every((s) => s.readableLength <= 256 * 1024));
  } finally {
    await cleanup();
  }
});
