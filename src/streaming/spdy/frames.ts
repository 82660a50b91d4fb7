/**
 * SPDY/3.1 framing (draft 3 / 3.1): pure encode and incremental decode, no I/O.
 *
 * Control frame:  |1| version(15) | type(16) | flags(8) | length(24) | payload
 * Data frame:     |0| stream id(31)           | flags(8) | length(24) | payload
 * Header blocks stay compressed here; the connection owns the zlib contexts because they are
 * shared by every frame of one direction.
 */
import { errors } from '../../errors.js';

export const SPDY_VERSION = 3;

export const FrameType = {
  SYN_STREAM: 1,
  SYN_REPLY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  HEADERS: 8,
  WINDOW_UPDATE: 9,
} as const;

/** FLAG_FIN applies to data, SYN_STREAM, SYN_REPLY and HEADERS; UNIDIRECTIONAL only to SYN_STREAM. */
export const Flag = { FIN: 0x01, UNIDIRECTIONAL: 0x02 } as const;

export const RstStatus = {
  PROTOCOL_ERROR: 1,
  INVALID_STREAM: 2,
  REFUSED_STREAM: 3,
  UNSUPPORTED_VERSION: 4,
  CANCEL: 5,
  INTERNAL_ERROR: 6,
  FLOW_CONTROL_ERROR: 7,
  STREAM_IN_USE: 8,
  STREAM_ALREADY_CLOSED: 9,
  FRAME_TOO_LARGE: 11,
} as const;

export const GoAwayStatus = { OK: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2 } as const;

export const SettingId = { MAX_CONCURRENT_STREAMS: 4, INITIAL_WINDOW_SIZE: 7 } as const;

/** Initial per-stream and per-session flow-control window (SPDY/3.1). */
export const DEFAULT_WINDOW = 65536;
/** Largest payload a 24-bit length field can describe. */
export const MAX_FRAME_PAYLOAD = 0xffffff;

const STREAM_ID_MASK = 0x7fffffff;

export interface DataFrame {
  type: 'data';
  streamId: number;
  flags: number;
  data: Buffer;
}
export interface SynStreamFrame {
  type: 'syn_stream';
  streamId: number;
  associatedStreamId: number;
  priority: number;
  slot: number;
  flags: number;
  headerBlock: Buffer;
}
export interface SynReplyFrame {
  type: 'syn_reply';
  streamId: number;
  flags: number;
  headerBlock: Buffer;
}
export interface RstStreamFrame {
  type: 'rst_stream';
  streamId: number;
  status: number;
}
export interface SettingsEntry {
  id: number;
  flags: number;
  value: number;
}
export interface SettingsFrame {
  type: 'settings';
  flags: number;
  entries: SettingsEntry[];
}
export interface PingFrame {
  type: 'ping';
  id: number;
}
export interface GoAwayFrame {
  type: 'goaway';
  lastGoodStreamId: number;
  status: number;
}
export interface HeadersFrame {
  type: 'headers';
  streamId: number;
  flags: number;
  headerBlock: Buffer;
}
export interface WindowUpdateFrame {
  type: 'window_update';
  streamId: number;
  delta: number;
}
/** A control frame of a type this implementation does not know; the spec says ignore it. */
export interface UnknownFrame {
  type: 'unknown';
  controlType: number;
  flags: number;
  payload: Buffer;
}

export type Frame =
  DataFrame | SynStreamFrame | SynReplyFrame | RstStreamFrame | SettingsFrame | PingFrame | GoAwayFrame | HeadersFrame | WindowUpdateFrame | UnknownFrame;

function control(type: number, flags: number, payload: Buffer): Buffer {
  if (payload.length > MAX_FRAME_PAYLOAD) throw errors.invalidArgument('spdy.frame_too_large', `control frame payload of ${payload.length} bytes`);
  const out = Buffer.allocUnsafe(8 + payload.length);
  out.writeUInt16BE(0x8000 | SPDY_VERSION, 0);
  out.writeUInt16BE(type, 2);
  out.writeUInt32BE(((flags & 0xff) << 24) | payload.length, 4);
  payload.copy(out, 8);
  return out;
}

function u32(...values: number[]): Buffer {
  const b = Buffer.allocUnsafe(4 * values.length);
  values.forEach((v, i) => b.writeUInt32BE(v >>> 0, i * 4));
  return b;
}

/** Serializes one frame. Header blocks must already be compressed. */
export function encodeFrame(frame: Frame): Buffer {
  switch (frame.type) {
    case 'data': {
      if (frame.data.length > MAX_FRAME_PAYLOAD) throw errors.invalidArgument('spdy.frame_too_large', `data frame of ${frame.data.length} bytes`);
      const out = Buffer.allocUnsafe(8 + frame.data.length);
      out.writeUInt32BE(frame.streamId & STREAM_ID_MASK, 0);
      out.writeUInt32BE((((frame.flags & 0xff) << 24) | frame.data.length) >>> 0, 4);
      frame.data.copy(out, 8);
      return out;
    }
    case 'syn_stream': {
      const head = Buffer.allocUnsafe(10);
      head.writeUInt32BE(frame.streamId & STREAM_ID_MASK, 0);
      head.writeUInt32BE(frame.associatedStreamId & STREAM_ID_MASK, 4);
      head.writeUInt8((frame.priority & 0x7) << 5, 8);
      head.writeUInt8(frame.slot & 0xff, 9);
      return control(FrameType.SYN_STREAM, frame.flags, Buffer.concat([head, frame.headerBlock]));
    }
    case 'syn_reply':
      return control(FrameType.SYN_REPLY, frame.flags, Buffer.concat([u32(frame.streamId & STREAM_ID_MASK), frame.headerBlock]));
    case 'headers':
      return control(FrameType.HEADERS, frame.flags, Buffer.concat([u32(frame.streamId & STREAM_ID_MASK), frame.headerBlock]));
    case 'rst_stream':
      return control(FrameType.RST_STREAM, 0, u32(frame.streamId & STREAM_ID_MASK, frame.status));
    case 'settings': {
      const body = Buffer.allocUnsafe(4 + 8 * frame.entries.length);
      body.writeUInt32BE(frame.entries.length, 0);
      frame.entries.forEach((e, i) => {
        body.writeUInt32BE((((e.flags & 0xff) << 24) | (e.id & 0xffffff)) >>> 0, 4 + i * 8);
        body.writeUInt32BE(e.value >>> 0, 8 + i * 8);
      });
      return control(FrameType.SETTINGS, frame.flags, body);
    }
    case 'ping':
      return control(FrameType.PING, 0, u32(frame.id));
    case 'goaway':
      return control(FrameType.GOAWAY, 0, u32(frame.lastGoodStreamId & STREAM_ID_MASK, frame.status));
    case 'window_update':
      return control(FrameType.WINDOW_UPDATE, 0, u32(frame.streamId & STREAM_ID_MASK, frame.delta & STREAM_ID_MASK));
    case 'unknown':
      return control(frame.controlType, frame.flags, frame.payload);
  }
}

function protocolError(msg: string): Error {
  return errors.invalidArgument('spdy.protocol_error', msg);
}

function need(payload: Buffer, n: number, what: string): void {
  if (payload.length < n) throw protocolError(`${what} frame payload too short (${payload.length} < ${n})`);
}

function decodeControl(type: number, flags: number, p: Buffer): Frame {
  switch (type) {
    case FrameType.SYN_STREAM:
      need(p, 10, 'SYN_STREAM');
      return {
        type: 'syn_stream',
        streamId: p.readUInt32BE(0) & STREAM_ID_MASK,
        associatedStreamId: p.readUInt32BE(4) & STREAM_ID_MASK,
        priority: p.readUInt8(8) >> 5,
        slot: p.readUInt8(9),
        flags,
        headerBlock: p.subarray(10),
      };
    case FrameType.SYN_REPLY:
      need(p, 4, 'SYN_REPLY');
      return { type: 'syn_reply', streamId: p.readUInt32BE(0) & STREAM_ID_MASK, flags, headerBlock: p.subarray(4) };
    case FrameType.HEADERS:
      need(p, 4, 'HEADERS');
      return { type: 'headers', streamId: p.readUInt32BE(0) & STREAM_ID_MASK, flags, headerBlock: p.subarray(4) };
    case FrameType.RST_STREAM:
      need(p, 8, 'RST_STREAM');
      return { type: 'rst_stream', streamId: p.readUInt32BE(0) & STREAM_ID_MASK, status: p.readUInt32BE(4) };
    case FrameType.SETTINGS: {
      need(p, 4, 'SETTINGS');
      const count = p.readUInt32BE(0);
      need(p, 4 + count * 8, 'SETTINGS');
      const entries: SettingsEntry[] = [];
      for (let i = 0; i < count; i++) {
        const idf = p.readUInt32BE(4 + i * 8);
        entries.push({ flags: idf >>> 24, id: idf & 0xffffff, value: p.readUInt32BE(8 + i * 8) });
      }
      return { type: 'settings', flags, entries };
    }
    case FrameType.PING:
      need(p, 4, 'PING');
      return { type: 'ping', id: p.readUInt32BE(0) };
    case FrameType.GOAWAY:
      // SPDY/3 added the status code; accept a bare stream id as well.
      need(p, 4, 'GOAWAY');
      return { type: 'goaway', lastGoodStreamId: p.readUInt32BE(0) & STREAM_ID_MASK, status: p.length >= 8 ? p.readUInt32BE(4) : 0 };
    case FrameType.WINDOW_UPDATE:
      need(p, 8, 'WINDOW_UPDATE');
      return { type: 'window_update', streamId: p.readUInt32BE(0) & STREAM_ID_MASK, delta: p.readUInt32BE(4) & STREAM_ID_MASK };
    default:
      return { type: 'unknown', controlType: type, flags, payload: p };
  }
}

/**
 * Incremental frame decoder: feed socket chunks, get whole frames. Throws on a control frame
 * with a version other than 3 or on a frame larger than `maxFrameSize` (a peer must not make
 * us buffer unbounded data).
 */
export class FrameReader {
  /** Received bytes not yet part of a returned frame, as the chunks they came in. */
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxFrameSize = 1 << 20) {}

  push(chunk: Buffer): Frame[] {
    if (chunk.length === 0) return [];
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.buffered < 8) break;
      const head = this.peek(8);
      const word = head.readUInt32BE(0);
      const flagsLen = head.readUInt32BE(4);
      const flags = flagsLen >>> 24;
      const length = flagsLen & 0xffffff;
      if (length > this.maxFrameSize) throw errors.invalidArgument('spdy.frame_too_large', `frame of ${length} bytes exceeds ${this.maxFrameSize}`);
      // A frame is joined into one buffer only once all of it is here (no re-copy per chunk).
      if (this.buffered < 8 + length) break;
      const payload = Buffer.from(this.take(8 + length).subarray(8));
      if (word & 0x80000000) {
        const version = (word >>> 16) & 0x7fff;
        if (version !== SPDY_VERSION) throw errors.invalidArgument('spdy.unsupported_version', `control frame version ${version}, want ${SPDY_VERSION}`);
        frames.push(decodeControl(word & 0xffff, flags, payload));
      } else {
        frames.push({ type: 'data', streamId: word & STREAM_ID_MASK, flags, data: payload });
      }
    }
    return frames;
  }

  /** The first `n` buffered bytes, without consuming them. */
  private peek(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  /** Removes and returns the first `n` buffered bytes. */
  private take(n: number): Buffer {
    const parts: Buffer[] = [];
    let need = n;
    let i = 0;
    while (need > 0) {
      const c = this.chunks[i]!;
      if (c.length <= need) {
        parts.push(c);
        i += 1;
        need -= c.length;
      } else {
        parts.push(c.subarray(0, need));
        this.chunks[i] = c.subarray(need);
        need = 0;
      }
    }
    // One splice per frame, not one shift per chunk (a frame may arrive in many tiny chunks).
    if (i > 0) this.chunks.splice(0, i);
    this.buffered -= n;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  }
}
