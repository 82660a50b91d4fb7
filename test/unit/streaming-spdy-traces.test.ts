/**
 * SPDY byte layout checked against an independent implementation (issue 16): sessions of a real
 * kubectl (Go's moby/spdystream, compress/zlib) with berth's streaming server, recorded by
 * test/fixtures/spdy/record.ts into test/fixtures/spdy/*.json. Without these, berth's SPDY
 * reader was only ever checked against berth's own writer, so a layout bug on both sides would
 * cancel out. Checked here:
 *  - every frame Go wrote parses, and berth's encoder writes it back byte for byte (frame
 *    headers, flags, lengths, DATA, GOAWAY);
 *  - Go's compressed header blocks inflate through berth's decompressor (one zlib stream per
 *    direction, SPDY dictionary) to the headers client-go is known to send, and berth's header
 *    block encoder produces exactly the name/value bytes Go's did (inflated here by plain zlib);
 *  - the client's bytes replayed to a fresh server (new token, same backend) give the session
 *    the real kubectl got: the same replies, output, status and close, frame for frame.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import zlib from 'node:zlib';
import { SPDY3_DICTIONARY } from '../../src/streaming/spdy/dictionary.js';
import { FrameReader, encodeFrame, type Frame } from '../../src/streaming/spdy/frames.js';
import { HeaderDecompressor, encodeHeaderBlock, type SpdyHeaders } from '../../src/streaming/spdy/headers.js';
import { StreamingServer } from '../../src/streaming/server.js';
import type { StreamIO, StreamingBackend } from '../../src/streaming/types.js';
import { until } from '../helpers/process.js';

interface Trace {
  client: string;
  command: string[];
  chunks: { dir: 'c2s' | 's2c'; hex: string }[];
}

const fixture = (name: string): Trace => JSON.parse(readFileSync(new URL(`../../../test/fixtures/spdy/${name}`, import.meta.url), 'utf8')) as Trace;

/** One direction's bytes, split into the HTTP head and the SPDY chunks as they were read. */
function side(t: Trace, dir: 'c2s' | 's2c'): { head: string; chunks: Buffer[] } {
  const all = t.chunks.filter((c) => c.dir === dir).map((c) => Buffer.from(c.hex, 'hex'));
  const joined = Buffer.concat(all);
  const end = joined.indexOf('\r\n\r\n');
  assert.ok(end > 0, `${dir}: an HTTP head`);
  // Re-split the SPDY part at the recorded chunk boundaries.
  const chunks: Buffer[] = [];
  let off = 0;
  for (const c of all) {
    const from = Math.max(off, end + 4);
    if (off + c.length > from) chunks.push(c.subarray(from - off));
    off += c.length;
  }
  return { head: joined.subarray(0, end).toString('latin1'), chunks };
}

function parse(chunks: Buffer[]): Frame[] {
  const r = new FrameReader();
  return chunks.flatMap((c) => r.push(c));
}

/** The raw name/value blocks of a direction's header frames, inflated by plain zlib (not berth's code). */
function rawHeaderBlocks(frames: Frame[]): Buffer[] {
  const blocks = frames.flatMap((f) => (f.type === 'syn_stream' || f.type === 'syn_reply' || f.type === 'headers' ? [f.headerBlock] : []));
  // One zlib stream per direction: inflate each prefix of blocks and keep what the last block added.
  const out: Buffer[] = [];
  let before = 0;
  for (let i = 1; i <= blocks.length; i++) {
    const all = zlib.inflateSync(Buffer.concat(blocks.slice(0, i)), { dictionary: SPDY3_DICTIONARY, finishFlush: zlib.constants.Z_SYNC_FLUSH });
    out.push(all.subarray(before));
    before = all.length;
  }
  return out;
}

async function headersOf(frames: Frame[]): Promise<SpdyHeaders[]> {
  const d = new HeaderDecompressor();
  try {
    const out: SpdyHeaders[] = [];
    for (const f of frames) if (f.type === 'syn_stream' || f.type === 'syn_reply' || f.type === 'headers') out.push({ ...(await d.decompress(f.headerBlock)) });
    return out;
  } finally {
    d.close();
  }
}

/** Data per stream, and which streams saw FIN or RST (order across streams may differ). */
function perStream(frames: Frame[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of frames) {
    if (f.type === 'data') out[f.streamId] = (out[f.streamId] ?? '') + f.data.toString() + (f.flags & 1 ? '<FIN>' : '');
    else if (f.type === 'syn_reply') out[`${f.streamId}`] = (out[f.streamId] ?? '') + '<REPLY>';
    else if (f.type === 'rst_stream') out[f.streamId] = (out[f.streamId] ?? '') + `<RST ${f.status}>`;
    else if (f.type === 'goaway') out.goaway = `last ${f.lastGoodStreamId} status ${f.status}`;
  }
  return out;
}

const backend: StreamingBackend = {
  async exec(_id: string, _cmd: string[], io: StreamIO): Promise<{ exitCode: number }> {
    io.stdout?.write('out\n');
    io.stderr?.write('err\n');
    if (io.stdin) for await (const c of io.stdin) io.stdout?.write(c as Buffer);
    return { exitCode: 3 };
  },
  async attach(): Promise<void> {},
  portForward(_pod: string, _port: number, stream: Duplex): Promise<void> {
    // An echo in place of the pod's server.
    return new Promise((resolve) => {
      stream.on('data', (d: Buffer) => stream.write(d));
      stream.once('end', () => stream.end());
      stream.once('close', () => resolve());
    });
  },
};

/** Sends the recorded client bytes (with the request line pointing at `path`) and collects the answer. */
async function replay(server: StreamingServer, t: Trace, path: string, until_?: (frames: Frame[]) => boolean): Promise<{ head: string; frames: Frame[] }> {
  const c2s = side(t, 'c2s');
  const lines = c2s.head.split('\r\n');
  lines[0] = (lines[0] as string).replace(/^POST \/[a-z]+\/[A-Za-z0-9_-]+/, `POST ${path}`);
  const u = new URL(server.url);
  const sock = net.connect(Number(u.port), u.hostname);
  const got: Buffer[] = [];
  sock.on('data', (d: Buffer) => got.push(d));
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  await new Promise<void>((r) => sock.once('connect', () => r()));
  sock.write(lines.join('\r\n') + '\r\n\r\n');
  const bytes = () => Buffer.concat(got);
  await until(() => bytes().includes('\r\n\r\n'), 'the 101 answer');
  for (const c of c2s.chunks) sock.write(c);
  const frames = (): Frame[] => {
    const all = bytes();
    return parse([all.subarray(all.indexOf('\r\n\r\n') + 4)]);
  };
  // An exec session is closed by the server once it has reported; a port-forward session
  // lasts while the client keeps it: leave once the error stream has ended (kubectl's SIGINT).
  if (until_ !== undefined) {
    await until(() => until_(frames()), 'the session carried what it should');
    sock.destroy();
  }
  await closed;
  const all = bytes();
  return { head: all.subarray(0, all.indexOf('\r\n\r\n')).toString('latin1'), frames: frames() };
}

for (const name of ['kubectl-exec.json', 'kubectl-portforward.json']) {
  test(`${name}: every frame Go wrote parses and re-encodes to the same bytes`, () => {
    const t = fixture(name);
    for (const dir of ['c2s', 's2c'] as const) {
      const { chunks } = side(t, dir);
      const wire = Buffer.concat(chunks);
      const frames = parse(chunks);
      assert.ok(frames.length > 0, `${dir}: frames`);
      assert.equal(Buffer.concat(frames.map(encodeFrame)).toString('hex'), wire.toString('hex'), `${dir}: byte for byte`);
      // Fed one byte at a time, the reader finds the same frames.
      const r = new FrameReader();
      const bytewise: Frame[] = [];
      for (const b of wire) bytewise.push(...r.push(Buffer.from([b])));
      assert.deepEqual(bytewise, frames);
    }
  });

  test(`${name}: Go's header blocks inflate to client-go's headers, and berth encodes them to the same name/value bytes`, async () => {
    const t = fixture(name);
    const frames = parse(side(t, 'c2s').chunks);
    const headers = await headersOf(frames);
    const raw = rawHeaderBlocks(frames);
    assert.equal(headers.length, raw.length);
    for (const [i, h] of headers.entries()) assert.equal(encodeHeaderBlock(h).toString('hex'), (raw[i] as Buffer).toString('hex'), `header block ${i}`);
    if (name === 'kubectl-exec.json') {
      // client-go opens error first, then stdin, stdout, stderr, on odd ids.
      assert.deepEqual(headers, [{ streamtype: 'error' }, { streamtype: 'stdin' }, { streamtype: 'stdout' }, { streamtype: 'stderr' }]);
      assert.deepEqual(
        frames.filter((f) => f.type === 'syn_stream').map((f) => f.streamId),
        [1, 3, 5, 7],
      );
    } else {
      assert.equal(headers.length, 2);
      assert.deepEqual(
        headers.map((h) => h.streamtype),
        ['error', 'data'],
      );
      for (const h of headers) {
        assert.match(h.port ?? '', /^\d+$/);
        assert.equal(h.requestid, '0');
      }
    }
  });

  test(`${name}: the client's bytes replayed to a fresh server give the session kubectl got`, async () => {
    const t = fixture(name);
    const server = new StreamingServer({ address: '127.0.0.1:0', backend });
    await server.start();
    try {
      const path =
        name === 'kubectl-exec.json'
          ? new URL(server.getExec({ containerId: 'c1', cmd: ['cmd'], tty: false, stdin: true, stdout: true, stderr: true })).pathname
          : new URL(server.getPortForward({ podSandboxId: 'p1', port: [] })).pathname;
      const errorEnded = (fs: Frame[]) => fs.some((f) => f.type === 'data' && f.streamId === 1 && (f.flags & 1) !== 0);
      const got = await replay(server, t, path, name === 'kubectl-exec.json' ? undefined : errorEnded);
      const recorded = side(t, 's2c');
      assert.equal(got.head, recorded.head);
      const want = parse(recorded.chunks);
      assert.deepEqual(perStream(got.frames), perStream(want));
      if (name === 'kubectl-exec.json') {
        // What kubectl printed came from these frames: stdout, stderr and exit code 3.
        const s = perStream(want);
        assert.equal(s['5'], '<REPLY>out\nhello from kubectl\n<FIN>');
        assert.equal(s['7'], '<REPLY>err\n<FIN>');
        assert.match(s['1'] ?? '', /"reason":"NonZeroExitCode".*"message":"3"/);
      } else {
        assert.equal(perStream(want)['3'], '<REPLY>ping<FIN>');
      }
    } finally {
      await server.stop();
    }
  });
}
