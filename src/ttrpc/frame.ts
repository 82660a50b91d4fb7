/**
 * ttrpc framing (containerd/ttrpc PROTOCOL.md).
 *
 * Every message is a 10-byte big-endian header followed by `length` payload bytes:
 *
 *   bytes 0..3  payload length (uint32)      bytes 8  message type (uint8)
 *   bytes 4..7  stream id (uint32)           bytes 9  flags (uint8)
 *
 * Payloads above MESSAGE_LENGTH_MAX (4 MiB) are never buffered: the decoder skips their bytes
 * as they arrive and reports the header once the payload has been skipped, so the owner can
 * answer that stream with ResourceExhausted the way Go's ttrpc does.
 */

import { errors, type BerthError } from '../errors.js';

export const HEADER_LENGTH = 10;
/** ttrpc's messageLengthMax: 4 MiB of payload. */
export const MESSAGE_LENGTH_MAX = 4 << 20;

export const MessageType = {
  Request: 0x1,
  Response: 0x2,
  Data: 0x3,
} as const;
export type MessageTypeValue = (typeof MessageType)[keyof typeof MessageType];

export const Flags = {
  RemoteClosed: 0x1,
  RemoteOpen: 0x2,
  NoData: 0x4,
} as const;

export interface FrameHeader {
  length: number;
  streamId: number;
  type: number;
  flags: number;
}

/** Above this announced length the first (reserved) byte is non-zero: no valid peer sends it. */
const RESERVED_LIMIT = 1 << 24;

/** Writes a header into `buf` at `offset` (no allocation). */
export function writeHeader(buf: Buffer, offset: number, h: FrameHeader): void {
  buf.writeUInt32BE(h.length, offset);
  buf.writeUInt32BE(h.streamId, offset + 4);
  buf[offset + 8] = h.type;
  buf[offset + 9] = h.flags;
}

export function readHeader(buf: Buffer, offset = 0): FrameHeader {
  return {
    length: buf.readUInt32BE(offset),
    streamId: buf.readUInt32BE(offset + 4),
    type: buf[offset + 8]!,
    flags: buf[offset + 9]!,
  };
}

export function tooLargeError(length: number): BerthError {
  return errors.resourceExhausted('ttrpc.message_too_large', `message length ${length} exceed maximum message size of ${MESSAGE_LENGTH_MAX}`);
}

/**
 * One frame as a single buffer (one write syscall, no cork needed). Throws ResourceExhausted
 * for payloads above the limit so an oversized message never reaches the wire.
 */
export function encodeFrame(streamId: number, type: number, flags: number, payload: Uint8Array): Buffer {
  if (payload.length > MESSAGE_LENGTH_MAX) throw tooLargeError(payload.length);
  const out = Buffer.allocUnsafe(HEADER_LENGTH + payload.length);
  writeHeader(out, 0, { length: payload.length, streamId, type, flags });
  out.set(payload, HEADER_LENGTH);
  return out;
}

export interface FrameSink {
  /** A complete frame. `payload` may be a view into a received chunk: copy it to keep it. */
  frame(header: FrameHeader, payload: Buffer): void;
  /** A frame whose payload exceeded the limit has been fully skipped. */
  oversized(header: FrameHeader): void;
  /** The byte stream cannot be a ttrpc stream any more; the connection must be closed. */
  protocolError(err: BerthError): void;
}

type State = 'header' | 'body' | 'discard' | 'failed';

/**
 * Incremental frame parser. Received chunks are kept in a list and only joined when a frame
 * spans chunks, so a large payload arriving in many chunks is copied once, not per chunk.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private state: State = 'header';
  private header: FrameHeader = { length: 0, streamId: 0, type: 0, flags: 0 };
  private toDiscard = 0;

  constructor(private readonly sink: FrameSink) {}

  /** Bytes currently held (for tests and diagnostics: stays bounded for oversized frames). */
  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): void {
    if (this.state === 'failed' || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.state === 'header') {
        if (this.buffered < HEADER_LENGTH) return;
        this.header = readHeader(this.take(HEADER_LENGTH));
        const len = this.header.length;
        if (len >= RESERVED_LIMIT) {
          // The reserved first byte is set: garbage, not an oversized message. Skipping up to
          // 4 GiB would stall the connection, so give up on it instead.
          this.fail(errors.invalidArgument('ttrpc.bad_frame_header', `ttrpc: invalid frame header (announced length ${len}, reserved byte set)`));
          return;
        }
        if (len > MESSAGE_LENGTH_MAX) {
          this.state = 'discard';
          this.toDiscard = len;
        } else {
          this.state = 'body';
        }
      } else if (this.state === 'body') {
        const len = this.header.length;
        if (this.buffered < len) return;
        const payload = this.take(len);
        this.state = 'header';
        this.sink.frame(this.header, payload);
        if (this.state !== 'header') return; // sink called fail()/reset while handling
      } else if (this.state === 'discard') {
        this.skip(Math.min(this.toDiscard, this.buffered));
        if (this.toDiscard > 0) return;
        this.state = 'header';
        this.sink.oversized(this.header);
        if (this.state !== 'header') return;
      } else {
        return;
      }
    }
  }

  /** Stops parsing and drops buffered bytes (after a protocol error or on close). */
  fail(err?: BerthError): void {
    if (this.state === 'failed') return;
    this.state = 'failed';
    this.chunks = [];
    this.buffered = 0;
    if (err) this.sink.protocolError(err);
  }

  /** True while a frame is partially received (used to tell a clean EOF from a truncated one). */
  get midFrame(): boolean {
    return this.state !== 'failed' && (this.buffered > 0 || this.state !== 'header');
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (first.length >= n) {
      // Common case: zero-copy view.
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const want = n - filled;
      if (c.length <= want) {
        out.set(c, filled);
        filled += c.length;
        this.chunks.shift();
      } else {
        out.set(c.subarray(0, want), filled);
        this.chunks[0] = c.subarray(want);
        filled += want;
      }
    }
    this.buffered -= n;
    return out;
  }

  private skip(n: number): void {
    this.toDiscard -= n;
    this.buffered -= n;
    while (n > 0) {
      const c = this.chunks[0]!;
      if (c.length <= n) {
        n -= c.length;
        this.chunks.shift();
      } else {
        this.chunks[0] = c.subarray(n);
        n = 0;
      }
    }
  }
}
