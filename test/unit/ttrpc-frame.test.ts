import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { FrameDecoder, encodeFrame, MESSAGE_LENGTH_MAX, MessageType, type FrameHeader } from '../../src/ttrpc/frame.js';
import { TtrpcClient } from '../../src/ttrpc/client.js';
import { isBerthError, type BerthError } from '../../src/errors.js';

interface Seen {
  frames: { h: FrameHeader; p: Buffer }[];
  oversized: FrameHeader[];
  errors: BerthError[];
}

function collecting(): { seen: Seen; dec: FrameDecoder } {
  const seen: Seen = { frames: [], oversized: [], errors: [] };
  const dec = new FrameDecoder({
    frame: (h, p) => seen.frames.push({ h, p: Buffer.from(p) }),
    oversized: (h) => seen.oversized.push(h),
    protocolError: (e) => seen.errors.push(e),
  });
  return { seen, dec };
}

test('client writes a request frame with the exact ttrpc header layout', async () => {
  const written: Buffer[] = [];
  const wire = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      written.push(chunk);
      cb();
    },
  });
  const client = new TtrpcClient(wire);
  const call = client.call('s', 'm', new Uint8Array(0));
  await new Promise((r) => setImmediate(r)); // frames of one tick are flushed together
  client.close();
  await assert.rejects(call, (e: unknown) => isBerthError(e, 'Unavailable'));
  // ttrpc.Request{service:"s", method:"m"} = 0a 01 73 12 01 6d (6 bytes)
  const expected = Buffer.from([
    0x00,
    0x00,
    0x00,
    0x06, // payload length, big endian
    0x00,
    0x00,
    0x00,
    0x01, // stream id 1 (first client stream)
    0x01, // type: request
    0x00, // flags: none (unary)
    0x0a,
    0x01,
    0x73,
    0x12,
    0x01,
    0x6d,
  ]);
  assert.deepEqual(Buffer.concat(written), expected);
});

test('encodeFrame puts length, stream id, type and flags big-endian before the payload', () => {
  const f = encodeFrame(0x01020305, MessageType.Response, 0x04, Buffer.from('xyz'));
  assert.deepEqual([...f], [0, 0, 0, 3, 1, 2, 3, 5, 2, 4, 0x78, 0x79, 0x7a]);
});

test('encodeFrame refuses payloads over 4 MiB with ResourceExhausted', () => {
  assert.throws(
    () => encodeFrame(1, MessageType.Request, 0, new Uint8Array(MESSAGE_LENGTH_MAX + 1)),
    (e: unknown) => isBerthError(e, 'ResourceExhausted'),
  );
  assert.equal(encodeFrame(1, MessageType.Request, 0, new Uint8Array(MESSAGE_LENGTH_MAX)).length, MESSAGE_LENGTH_MAX + 10);
});

test('decoder reassembles frames split at every byte boundary and several frames per chunk', () => {
  const a = encodeFrame(1, MessageType.Request, 0, Buffer.from('hello'));
  const b = encodeFrame(3, MessageType.Request, 2, Buffer.alloc(0));
  const c = encodeFrame(5, MessageType.Data, 1, Buffer.from('world!'));
  const all = Buffer.concat([a, b, c]);
  for (let split = 1; split < all.length; split++) {
    const { seen, dec } = collecting();
    dec.push(all.subarray(0, split));
    dec.push(all.subarray(split));
    assert.equal(seen.frames.length, 3, `split at ${split}`);
    assert.deepEqual(
      seen.frames.map((f) => [f.h.streamId, f.h.type, f.h.flags, f.p.toString()]),
      [
        [1, 1, 0, 'hello'],
        [3, 1, 2, ''],
        [5, 3, 1, 'world!'],
      ],
    );
    assert.equal(dec.bufferedBytes, 0);
  }
  const { seen, dec } = collecting();
  for (const byte of all) dec.push(Buffer.from([byte]));
  assert.equal(seen.frames.length, 3);
});

test('decoder skips an announced 5 MiB payload without ever buffering it, then resumes', () => {
  const { seen, dec } = collecting();
  const announced = 5 * 1024 * 1024;
  const header = Buffer.alloc(10);
  header.writeUInt32BE(announced, 0);
  header.writeUInt32BE(7, 4);
  header[8] = MessageType.Request;
  dec.push(header);
  const chunk = Buffer.alloc(64 * 1024);
  let maxBuffered = 0;
  for (let sent = 0; sent < announced; sent += chunk.length) {
    dec.push(chunk);
    maxBuffered = Math.max(maxBuffered, dec.bufferedBytes);
  }
  assert.equal(maxBuffered, 0, 'oversized payload bytes are dropped as they arrive');
  assert.equal(seen.frames.length, 0);
  assert.deepEqual(
    seen.oversized.map((h) => [h.streamId, h.length]),
    [[7, announced]],
  );
  dec.push(encodeFrame(9, MessageType.Request, 0, Buffer.from('ok')));
  assert.deepEqual(
    seen.frames.map((f) => f.h.streamId),
    [9],
  );
  assert.equal(seen.errors.length, 0);
});

test('decoder reports a header with the reserved byte set as a protocol error and stops', () => {
  const { seen, dec } = collecting();
  dec.push(Buffer.from('GARBAGE-GARBAGE-GARBAGE'));
  assert.equal(seen.errors.length, 1);
  assert.ok(isBerthError(seen.errors[0], 'InvalidArgument'));
  dec.push(encodeFrame(1, MessageType.Request, 0, Buffer.from('x')));
  assert.equal(seen.frames.length, 0, 'nothing is parsed after the stream is known to be broken');
  assert.equal(dec.bufferedBytes, 0);
});
