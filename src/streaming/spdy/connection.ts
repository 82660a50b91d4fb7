/**
 * A SPDY/3.1 session over an upgraded socket: stream management, SYN_REPLY, RST_STREAM, PING,
 * GOAWAY, SETTINGS and flow control. Used as the server side by the streaming server and as the
 * client side by the protocol tests.
 *
 * Flow control, and why it is lenient: SPDY/3.1 gives every stream and the session a 64 KiB
 * send window that the receiver reopens with WINDOW_UPDATE. Kubernetes' Go peer (spdystream)
 * never sends WINDOW_UPDATE and ignores the ones it receives, so a sender that strictly waited
 * for updates would stall kubectl after 64 KiB of output. We therefore always track the windows
 * and always send updates for what we consume; when a window runs dry before the peer has ever
 * sent an update, we wait a grace period for one and, if none comes, conclude the peer does not
 * do flow control and stop waiting on this session. A peer that sends updates is honoured.
 *
 * Receiving is bounded whatever the peer does: we advertise the default 64 KiB window per
 * stream and reopen it only as the consumer reads. A peer known to do flow control that sends
 * past the window gets RST_STREAM FLOW_CONTROL_ERROR; a peer that does none (spdystream) is
 * slowed by TCP instead: while any stream holds more than MAX_BUFFERED unread bytes, or all
 * streams together more than MAX_SESSION_BUFFERED, the socket is not read. A session accepts
 * at most `maxStreams` open streams (REFUSED_STREAM). A socket that is not read would not show
 * that the peer went away, so while reads are held a PING goes out every HOLD_PROBE_MS: to a
 * peer that is gone the kernel answers RST, the next write fails and the session closes.
 */
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import { errors } from '../../errors.js';
import { log as rootLog, type Logger } from '../../log.js';
import { DEFAULT_WINDOW, Flag, FrameReader, GoAwayStatus, RstStatus, SettingId, encodeFrame, type Frame } from './frames.js';
import { HeaderCompressor, HeaderDecompressor, type SpdyHeaders } from './headers.js';

export type SpdyRole = 'server' | 'client';

export interface SpdyConnectionOptions {
  role: SpdyRole;
  log?: Logger;
  /** Wait this long for a first WINDOW_UPDATE before treating the peer as not flow-controlling. */
  flowControlGraceMs?: number;
  /** Server role: send an empty SYN_REPLY to every accepted stream right after 'stream' fires. */
  autoReply?: boolean;
  /** How long close() waits for the peer to close before destroying the socket. */
  lingerMs?: number;
  /** Send WINDOW_UPDATE for consumed data (default true; false mimics Go's spdystream in tests). */
  sendWindowUpdates?: boolean;
  /** Most streams the peer may have open at once (default MAX_STREAMS). */
  maxStreams?: number;
}

/** Default cap of open peer streams per session (kubectl port-forward uses 2 per connection). */
export const MAX_STREAMS = 128;
/** Unread bytes a stream may hold before the session stops reading its socket. */
export const MAX_BUFFERED = 256 * 1024;
/** Unread bytes all streams of a session may hold together before the socket is not read. */
export const MAX_SESSION_BUFFERED = 1024 * 1024;

/** While the socket is not read, a PING probes the peer this often. */
export const HOLD_PROBE_MS = 2000;

/** Largest DATA payload we send in one frame. */
const MAX_DATA_CHUNK = 32 * 1024;
/** Send a WINDOW_UPDATE once this much received data has been consumed. */
const UPDATE_THRESHOLD = 16 * 1024;

type FlowMode = 'unknown' | 'enforce' | 'off';
/** What the reader queues: frames in wire order, then end-of-input and socket-closed markers. */
type Inbound = Frame | { type: 'eof' } | { type: 'socket_closed' };

export class SpdyStream extends Duplex {
  /** Headers of the SYN_STREAM that opened the stream (ours or the peer's). */
  replyHeaders: SpdyHeaders | undefined;
  /** Set once the peer reset the stream (RST_STREAM status code). */
  resetStatus: number | undefined;
  sendWindow: number;
  /** What the peer may still send before we reopen the window (may go negative for peers without flow control). */
  recvWindow = DEFAULT_WINDOW;
  private unacked = 0;
  private localClosed = false;
  private remoteClosed = false;
  private replied = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly conn: SpdyConnection,
    readonly id: number,
    readonly headers: SpdyHeaders,
    initialWindow: number,
  ) {
    super({ allowHalfOpen: true });
    this.sendWindow = initialWindow;
    // Backends write into these streams from process pipes; a late write after the client went
    // away must not become an unhandled 'error' that takes the daemon down.
    this.on('error', (err: Error) => conn.logDebug('spdy stream error', { stream: id, err: err.message }));
  }

  /** Sends SYN_REPLY (server side). Idempotent. */
  reply(headers: SpdyHeaders = {}, fin = false): void {
    if (this.replied || this.destroyed) return;
    this.replied = true;
    this.conn.sendHeaders('syn_reply', this.id, headers, fin);
    if (fin) this.markLocalClosed();
  }

  get isReplied(): boolean {
    return this.replied;
  }

  /** Aborts the stream with RST_STREAM (default CANCEL). */
  reset(status: number = RstStatus.CANCEL): void {
    if (this.destroyed) return;
    if (!(this.localClosed && this.remoteClosed)) this.conn.writeFrame({ type: 'rst_stream', streamId: this.id, status });
    this.localClosed = this.remoteClosed = true;
    this.destroy();
  }

  /**
   * Refuses the stream with a short text: one final DATA frame written at once, outside flow
   * control (a few hundred bytes past a window), so the stream's slot frees now and not once a
   * window opens. A peer that has not closed its side gets RST_STREAM CANCEL after the text.
   */
  refuseWith(text: string): void {
    if (this.destroyed || this.localClosed) return;
    this.reply({});
    this.conn.writeFrame({ type: 'data', streamId: this.id, flags: Flag.FIN, data: Buffer.from(text) });
    this.localClosed = true;
    if (!this.remoteClosed) this.conn.writeFrame({ type: 'rst_stream', streamId: this.id, status: RstStatus.CANCEL });
    this.remoteClosed = true;
    this.destroy();
  }

  // ---- called by the connection ----

  onReply(headers: SpdyHeaders, fin: boolean): void {
    this.replied = true;
    this.replyHeaders = headers;
    this.emit('reply', headers);
    if (fin) this.onRemoteFin();
  }

  onData(data: Buffer, fin: boolean): void {
    if (this.remoteClosed) {
      this.conn.writeFrame({ type: 'rst_stream', streamId: this.id, status: RstStatus.STREAM_ALREADY_CLOSED });
      return;
    }
    if (data.length > 0) {
      this.recvWindow -= data.length;
      if (this.recvWindow < 0 && this.conn.flowMode === 'enforce') {
        // The peer does flow control, so it knows the window it just overran.
        this.conn.logDebug('spdy stream sent past its receive window', { stream: this.id, over: -this.recvWindow });
        this.reset(RstStatus.FLOW_CONTROL_ERROR);
        return;
      }
      this.unacked += data.length;
      const more = this.push(data);
      if (more) this.flushWindowUpdate(false);
      if (this.readableLength > MAX_BUFFERED || this.conn.bufferedTotal() > MAX_SESSION_BUFFERED) this.conn.holdReads(this);
    }
    if (fin) this.onRemoteFin();
  }

  onRemoteFin(): void {
    if (this.remoteClosed) return;
    this.remoteClosed = true;
    this.push(null);
    this.maybeFinished();
  }

  onReset(status: number): void {
    this.resetStatus = status;
    this.localClosed = this.remoteClosed = true;
    this.emit('reset', status);
    this.wakeUp();
    this.destroy();
  }

  onWindowUpdate(delta: number): void {
    this.sendWindow += delta;
    this.wakeUp();
  }

  wakeUp(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  markLocalClosed(): void {
    this.localClosed = true;
    this.maybeFinished();
  }

  // ---- Duplex implementation ----

  override _read(): void {
    this.conn.releaseReads(this);
    this.flushWindowUpdate(true);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.sendData(chunk).then(
      () => cb(),
      (err: Error) => cb(err),
    );
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.localClosed && !this.destroyed) {
      this.conn.writeFrame({ type: 'data', streamId: this.id, flags: Flag.FIN, data: Buffer.alloc(0) });
      this.markLocalClosed();
    }
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!(this.localClosed && this.remoteClosed) && !this.conn.isClosed) {
      this.conn.writeFrame({ type: 'rst_stream', streamId: this.id, status: RstStatus.CANCEL });
      this.localClosed = this.remoteClosed = true;
    }
    this.wakeUp();
    this.conn.releaseReads(this);
    this.conn.forget(this.id);
    cb(err);
  }

  private flushWindowUpdate(force: boolean): void {
    if (this.unacked === 0 || this.remoteClosed || this.destroyed || !this.conn.sendsWindowUpdates) return;
    if (!force && this.unacked < UPDATE_THRESHOLD) return;
    const n = this.unacked;
    this.unacked = 0;
    this.recvWindow += n;
    this.conn.writeFrame({ type: 'window_update', streamId: this.id, delta: n });
    this.conn.consumed(n);
  }

  private async sendData(chunk: Buffer): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      // Writes after a reset are dropped, like writes to a socket the peer has closed.
      if (this.localClosed || this.destroyed || this.conn.isClosed) return;
      let allowed = MAX_DATA_CHUNK;
      if (this.conn.flowMode !== 'off') {
        const window = Math.min(this.sendWindow, this.conn.sessionSendWindow);
        if (window <= 0) {
          await this.waitForWindow();
          continue;
        }
        allowed = Math.min(allowed, window);
      }
      const part = chunk.subarray(off, off + allowed);
      this.sendWindow -= part.length;
      this.conn.sessionSendWindow -= part.length;
      off += part.length;
      if (!this.conn.writeFrame({ type: 'data', streamId: this.id, flags: 0, data: part })) await this.conn.drained();
    }
  }

  private waitForWindow(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.conn.awaitingWindow();
    });
  }

  private maybeFinished(): void {
    if (this.localClosed && this.remoteClosed) this.conn.forget(this.id);
  }
}

export interface SpdyConnectionEvents {
  stream: [SpdyStream];
  goaway: [number];
  close: [];
}

export class SpdyConnection extends EventEmitter<SpdyConnectionEvents> {
  readonly role: SpdyRole;
  flowMode: FlowMode = 'unknown';
  sessionSendWindow = DEFAULT_WINDOW;
  private initialSendWindow = DEFAULT_WINDOW;
  private readonly streams = new Map<number, SpdyStream>();
  private readonly reader = new FrameReader();
  private readonly deflater = new HeaderCompressor();
  private readonly inflater = new HeaderDecompressor();
  private readonly queue: Inbound[] = [];
  private processing = false;
  /** Bytes of frames read but not yet handled (the queue waits while a header block inflates). */
  private queuedBytes = 0;
  private queueHeld = false;
  private nextStreamId: number;
  private nextPingId: number;
  private lastRemoteStreamId = 0;
  private sessionUnacked = 0;
  private goneAway = false;
  private closed = false;
  private graceTimer: NodeJS.Timeout | undefined;
  private lingerTimer: NodeJS.Timeout | undefined;
  private readonly pings = new Map<number, () => void>();
  private readonly log: Logger;
  private readonly graceMs: number;
  private readonly autoReply: boolean;
  private readonly lingerMs: number;
  private readonly maxStreams: number;
  /** Streams holding more than MAX_BUFFERED unread bytes: the socket is paused while any is. */
  private readonly held = new Set<SpdyStream>();
  private probeTimer: NodeJS.Timeout | undefined;
  readonly sendsWindowUpdates: boolean;

  constructor(
    private readonly socket: Duplex,
    opts: SpdyConnectionOptions,
  ) {
    super();
    this.role = opts.role;
    this.log = opts.log ?? rootLog.child({ component: 'spdy' });
    this.graceMs = opts.flowControlGraceMs ?? 1000;
    this.autoReply = opts.autoReply ?? opts.role === 'server';
    this.lingerMs = opts.lingerMs ?? 2000;
    this.sendsWindowUpdates = opts.sendWindowUpdates ?? true;
    this.maxStreams = opts.maxStreams ?? MAX_STREAMS;
    // Client-initiated streams and pings are odd, server-initiated ones even.
    this.nextStreamId = opts.role === 'client' ? 1 : 2;
    this.nextPingId = opts.role === 'client' ? 1 : 2;
    socket.on('data', (chunk: Buffer) => this.onSocketData(chunk));
    socket.on('error', (err: Error) => this.log.debug('spdy socket error', { err: err.message }));
    // End and close go through the frame queue: frames read before them may still be waiting
    // for their header block to inflate, and must be handled first.
    socket.on('end', () => this.enqueue({ type: 'eof' }));
    socket.on('close', () => this.enqueue({ type: 'socket_closed' }));
  }

  logDebug(msg: string, fields: Record<string, unknown>): void {
    this.log.debug(msg, fields);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get streamCount(): number {
    return this.streams.size;
  }

  /** Opens a new stream (client role in kube's protocols; the server never needs to). */
  createStream(headers: SpdyHeaders, opts: { fin?: boolean } = {}): SpdyStream {
    if (this.closed || this.goneAway) throw errors.unavailable('spdy.session_closed', 'SPDY session is going away');
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const stream = new SpdyStream(this, id, headers, this.initialSendWindow);
    this.streams.set(id, stream);
    this.writeFrame({
      type: 'syn_stream',
      streamId: id,
      associatedStreamId: 0,
      priority: 0,
      slot: 0,
      flags: opts.fin ? Flag.FIN : 0,
      headerBlock: this.deflater.compress(headers),
    });
    if (opts.fin) stream.markLocalClosed();
    return stream;
  }

  /** Round-trip PING; resolves with the time in ms. */
  ping(timeoutMs = 5000): Promise<number> {
    const id = this.nextPingId;
    this.nextPingId += 2;
    const start = Date.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pings.delete(id);
        reject(errors.deadlineExceeded('spdy.ping_timeout', 'no PING reply'));
      }, timeoutMs);
      this.pings.set(id, () => {
        clearTimeout(timer);
        resolve(Date.now() - start);
      });
      this.writeFrame({ type: 'ping', id });
    });
  }

  /** Sends GOAWAY: no new streams will be accepted; existing ones continue. */
  goAway(status: number = GoAwayStatus.OK): void {
    if (this.goneAway || this.closed) return;
    this.goneAway = true;
    this.writeFrame({ type: 'goaway', lastGoodStreamId: this.lastRemoteStreamId, status });
  }

  /**
   * Graceful close: GOAWAY, then half-close the socket once everything queued is written, and
   * give the peer `lingerMs` to close its side (closing with unread input would make the
   * kernel send RST, which can discard output the peer has not read yet).
   */
  close(): void {
    if (this.closed) return;
    this.goAway();
    this.socket.end();
    this.lingerTimer ??= setTimeout(() => this.destroy(), this.lingerMs);
    this.lingerTimer.unref();
  }

  destroy(): void {
    this.socket.destroy();
    this.teardown();
  }

  // ---- used by SpdyStream ----

  writeFrame(frame: Frame): boolean {
    if (this.closed || this.socket.destroyed || this.socket.writableEnded) return true;
    return this.socket.write(encodeFrame(frame));
  }

  sendHeaders(kind: 'syn_reply' | 'headers', streamId: number, headers: SpdyHeaders, fin: boolean): void {
    this.writeFrame({ type: kind, streamId, flags: fin ? Flag.FIN : 0, headerBlock: this.deflater.compress(headers) });
  }

  drained(): Promise<void> {
    if (this.closed || !this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /** A stream's reader fell behind: stop reading the socket (TCP then slows the peer). */
  holdReads(s: SpdyStream): void {
    this.held.add(s);
    this.socket.pause();
    if (!this.probeTimer) {
      this.probeTimer = setInterval(() => {
        const id = this.nextPingId;
        this.nextPingId += 2;
        this.writeFrame({ type: 'ping', id });
      }, HOLD_PROBE_MS);
      this.probeTimer.unref();
    }
  }

  releaseReads(s: SpdyStream): void {
    if (!this.held.delete(s) || this.held.size > 0 || this.closed) return;
    clearInterval(this.probeTimer);
    this.probeTimer = undefined;
    if (!this.queueHeld) this.socket.resume();
  }

  /** Unread bytes held by all streams of the session. */
  bufferedTotal(): number {
    let n = 0;
    for (const s of this.streams.values()) n += s.readableLength;
    return n;
  }

  /** Whether the socket is not being read because a stream's reader fell behind. */
  get readsHeld(): boolean {
    return this.held.size > 0;
  }

  consumed(n: number): void {
    this.sessionUnacked += n;
    if (this.sessionUnacked >= UPDATE_THRESHOLD) {
      this.writeFrame({ type: 'window_update', streamId: 0, delta: this.sessionUnacked });
      this.sessionUnacked = 0;
    }
  }

  forget(id: number): void {
    this.streams.delete(id);
  }

  /** A stream ran out of window; start the grace timer if the peer's behaviour is unknown. */
  awaitingWindow(): void {
    if (this.flowMode !== 'unknown' || this.graceTimer) return;
    this.graceTimer = setTimeout(() => {
      this.graceTimer = undefined;
      if (this.flowMode !== 'unknown') return;
      this.log.debug('peer sent no WINDOW_UPDATE; disabling send-side flow control for this session');
      this.flowMode = 'off';
      this.wakeAll();
    }, this.graceMs);
    this.graceTimer.unref();
  }

  // ---- inbound ----

  private onSocketData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      this.protocolError(err);
      return;
    }
    for (const f of frames) this.queuedBytes += frameBytes(f);
    this.enqueue(...frames);
    // Frames pile up only while a header block inflates; past the mark, stop reading.
    if (this.queuedBytes > MAX_BUFFERED && !this.queueHeld) {
      this.queueHeld = true;
      this.socket.pause();
    }
  }

  /** The queue drained below the mark: read again unless a stream still holds reads. */
  private queueDrained(): void {
    if (!this.queueHeld || this.queuedBytes > MAX_BUFFERED / 2) return;
    this.queueHeld = false;
    if (this.held.size === 0 && !this.closed) this.socket.resume();
  }

  private enqueue(...items: Inbound[]): void {
    this.queue.push(...items);
    if (!this.processing) void this.processQueue();
  }

  /** Frames are handled strictly in order; only header blocks make us wait (async inflate). */
  private async processQueue(): Promise<void> {
    this.processing = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        const frame = this.queue.shift() as Inbound;
        if (frame.type !== 'eof' && frame.type !== 'socket_closed') {
          this.queuedBytes -= frameBytes(frame);
          this.queueDrained();
        }
        if (frame.type === 'eof') {
          // The peer will send nothing more; streams it left open can never finish. As in
          // spdystream, the end of the peer's input ends the session: what is queued is still
          // written (close() lingers), then the socket closes and its sessions see 'close'.
          for (const s of [...this.streams.values()]) s.onRemoteFin();
          this.close();
        } else if (frame.type === 'socket_closed') {
          this.teardown();
        } else if (frame.type === 'syn_stream' || frame.type === 'syn_reply' || frame.type === 'headers') {
          const headers = await this.inflater.decompress(frame.headerBlock);
          this.handleHeaderFrame(frame.type, frame.streamId, frame.flags, headers);
        } else {
          this.handleFrame(frame);
        }
      }
    } catch (err) {
      this.protocolError(err);
    } finally {
      this.processing = false;
    }
  }

  private handleHeaderFrame(kind: 'syn_stream' | 'syn_reply' | 'headers', id: number, flags: number, headers: SpdyHeaders): void {
    if (kind === 'syn_stream') {
      this.acceptStream(id, flags, headers);
      return;
    }
    const stream = this.streams.get(id);
    if (!stream) {
      this.writeFrame({ type: 'rst_stream', streamId: id, status: RstStatus.INVALID_STREAM });
      return;
    }
    if (kind === 'syn_reply') stream.onReply(headers, (flags & Flag.FIN) !== 0);
    else {
      stream.emit('headers', headers);
      if (flags & Flag.FIN) stream.onRemoteFin();
    }
  }

  private acceptStream(id: number, flags: number, headers: SpdyHeaders): void {
    const peerParity = this.role === 'server' ? 1 : 0;
    if (id === 0 || id % 2 !== peerParity || id <= this.lastRemoteStreamId) {
      this.writeFrame({ type: 'rst_stream', streamId: id, status: RstStatus.PROTOCOL_ERROR });
      return;
    }
    this.lastRemoteStreamId = id;
    if (this.goneAway || this.streams.size >= this.maxStreams) {
      if (!this.goneAway) this.log.debug('spdy: stream refused, too many open', { open: this.streams.size });
      this.writeFrame({ type: 'rst_stream', streamId: id, status: RstStatus.REFUSED_STREAM });
      return;
    }
    const stream = new SpdyStream(this, id, headers, this.initialSendWindow);
    this.streams.set(id, stream);
    // A unidirectional stream is one we may never write to.
    if (flags & Flag.UNIDIRECTIONAL) {
      stream.markLocalClosed();
      stream.end();
    }
    if (flags & Flag.FIN) stream.onRemoteFin();
    this.emit('stream', stream);
    if (this.autoReply && !stream.destroyed && !(flags & Flag.UNIDIRECTIONAL)) stream.reply({});
  }

  private handleFrame(frame: Frame): void {
    switch (frame.type) {
      case 'data': {
        const stream = this.streams.get(frame.streamId);
        if (!stream) {
          // Data racing with a close/reset of ours is harmless; data for a stream that never
          // existed is the peer's bug.
          const ours = frame.streamId % 2 === (this.role === 'client' ? 1 : 0);
          const known = ours ? frame.streamId < this.nextStreamId : frame.streamId <= this.lastRemoteStreamId;
          if (!known) this.writeFrame({ type: 'rst_stream', streamId: frame.streamId, status: RstStatus.INVALID_STREAM });
          return;
        }
        stream.onData(frame.data, (frame.flags & Flag.FIN) !== 0);
        return;
      }
      case 'rst_stream':
        this.streams.get(frame.streamId)?.onReset(frame.status);
        return;
      case 'settings':
        for (const e of frame.entries) {
          if (e.id === SettingId.INITIAL_WINDOW_SIZE) {
            // A peer that announces its window does flow control.
            if (this.flowMode === 'unknown') this.flowMode = 'enforce';
            const delta = e.value - this.initialSendWindow;
            this.initialSendWindow = e.value;
            for (const s of this.streams.values()) s.onWindowUpdate(delta);
          }
        }
        return;
      case 'ping': {
        const ours = frame.id % 2 === (this.role === 'client' ? 1 : 0);
        if (!ours) this.writeFrame(frame);
        else {
          const done = this.pings.get(frame.id);
          this.pings.delete(frame.id);
          done?.();
        }
        return;
      }
      case 'goaway':
        this.goneAway = true;
        this.emit('goaway', frame.status);
        return;
      case 'window_update':
        if (this.flowMode === 'unknown') this.flowMode = 'enforce';
        if (frame.streamId === 0) {
          this.sessionSendWindow += frame.delta;
          this.wakeAll();
        } else {
          this.streams.get(frame.streamId)?.onWindowUpdate(frame.delta);
        }
        return;
      case 'unknown':
        return;
      default:
        return;
    }
  }

  private wakeAll(): void {
    for (const s of this.streams.values()) s.wakeUp();
  }

  private protocolError(err: unknown): void {
    this.log.warn('SPDY protocol error; closing session', { err: err instanceof Error ? err.message : String(err) });
    this.goAway(GoAwayStatus.PROTOCOL_ERROR);
    this.destroy();
  }

  private teardown(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.graceTimer);
    clearTimeout(this.lingerTimer);
    clearInterval(this.probeTimer);
    for (const s of [...this.streams.values()]) s.destroy();
    this.streams.clear();
    this.inflater.close();
    this.deflater.close();
    this.emit('close');
  }
}

/** What a read frame holds in memory (its payload). */
function frameBytes(f: Frame): number {
  if (f.type === 'data') return f.data.length;
  if (f.type === 'syn_stream' || f.type === 'syn_reply' || f.type === 'headers') return f.headerBlock.length;
  return 16;
}
