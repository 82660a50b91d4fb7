/**
 * ttrpc client: many concurrent unary calls multiplexed over one connection.
 *
 * Stream ids are odd, start at 1 and grow by 2 (the Go server rejects re-used or decreasing
 * ids). A call ends when its Response frame arrives, its deadline passes, its AbortSignal
 * fires or the connection closes — whichever is first; late responses are dropped.
 */

import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { decodeResponse, encodeRequest } from './envelope.js';
import { BerthError, errors, fromStatus, hasCode } from '../errors.js';
import type { Any } from './pb.js';
import { codeFromDetails } from './status-details.js';
import { encodeFrame, FrameDecoder, MessageType, tooLargeError, type FrameHeader } from './frame.js';
import { metadataToWire, type MetadataInit } from './metadata.js';
import { FrameWriter } from './writer.js';

export interface CallOptions {
  /** Deadline for this call in milliseconds; sent to the server as timeout_nano. */
  timeoutMs?: number;
  signal?: AbortSignal;
  metadata?: MetadataInit;
}

export interface ClientOptions {
  /** Default deadline applied to calls that set none. */
  defaultTimeoutMs?: number;
}

interface Pending {
  resolve(payload: Uint8Array): void;
  reject(err: BerthError): void;
}

const MAX_STREAM_ID = 0xffffffff;

export interface TtrpcClientEvents {
  close: [err: BerthError | undefined];
}

export class TtrpcClient extends EventEmitter<TtrpcClientEvents> {
  private readonly pending = new Map<number, Pending>();
  private readonly decoder: FrameDecoder;
  private readonly writer: FrameWriter;
  private nextStreamId = 1;
  private closeReason: BerthError | undefined;
  private isClosed = false;
  private resolveClosed!: (err: BerthError | undefined) => void;
  /** Resolves (never rejects) once the connection is gone; the value says why, if abnormal. */
  readonly closed: Promise<BerthError | undefined>;

  /** Connects to a ttrpc server listening on a unix socket path. */
  static connect(path: string, opts: ClientOptions = {}): Promise<TtrpcClient> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(path);
      const onError = (err: Error): void => {
        sock.destroy();
        reject(errors.unavailable('ttrpc.connect', `ttrpc: connect ${path}: ${err.message}`, err));
      };
      sock.once('error', onError);
      sock.once('connect', () => {
        sock.off('error', onError);
        resolve(new TtrpcClient(sock, opts));
      });
    });
  }

  /** Wraps an already connected socket (or any duplex byte stream). The client owns it. */
  constructor(
    private readonly socket: Duplex,
    private readonly opts: ClientOptions = {},
  ) {
    super();
    this.closed = new Promise((r) => (this.resolveClosed = r));
    this.writer = new FrameWriter(socket);
    this.decoder = new FrameDecoder({
      frame: (h, p) => this.onFrame(h, p),
      oversized: (h) => this.settle(h.streamId, undefined, tooLargeError(h.length)),
      protocolError: (err) => this.teardown(err),
    });
    socket.on('data', (chunk: Buffer) => this.decoder.push(chunk));
    socket.on('error', (err: Error) => this.teardown(errors.unavailable('ttrpc.closed', `ttrpc: connection error: ${err.message}`, err)));
    socket.on('close', () => this.teardown(errors.unavailable('ttrpc.closed', 'ttrpc: connection closed')));
    socket.on('end', () => socket.end());
    if ((socket as net.Socket).setNoDelay) (socket as net.Socket).setNoDelay(true);
  }

  /** Number of calls waiting for an answer. */
  get inFlight(): number {
    return this.pending.size;
  }

  get isOpen(): boolean {
    return !this.isClosed;
  }

  /**
   * One unary call with an already encoded request message; resolves to the encoded response
   * message. A non-OK status from the server rejects with the matching BerthError kind.
   */
  call(service: string, method: string, payload: Uint8Array, opts: CallOptions = {}): Promise<Uint8Array> {
    if (this.isClosed) {
      return Promise.reject(this.closeReason ?? errors.unavailable('ttrpc.closed', 'ttrpc: client closed'));
    }
    const signal = opts.signal;
    if (signal?.aborted) return Promise.reject(abortError(signal));
    if (this.nextStreamId > MAX_STREAM_ID) {
      // Ids may not be reused on a connection; the owner has to reconnect.
      const err = errors.unavailable('ttrpc.stream_ids_exhausted', 'ttrpc: stream ids exhausted on this connection');
      this.teardown(err);
      return Promise.reject(err);
    }
    const timeoutMs = opts.timeoutMs ?? this.opts.defaultTimeoutMs;
    const streamId = this.nextStreamId;

    let frame: Buffer;
    try {
      const req = encodeRequest({
        service,
        method,
        payload,
        timeoutNano: timeoutMs !== undefined && timeoutMs > 0 ? BigInt(Math.round(timeoutMs * 1e6)) : 0n,
        metadata: metadataToWire(opts.metadata),
      });
      frame = encodeFrame(streamId, MessageType.Request, 0, req);
    } catch (err) {
      return Promise.reject(err instanceof BerthError ? err : errors.internal('ttrpc.encode', `ttrpc: encode request: ${String(err)}`, err));
    }
    this.nextStreamId += 2;

    return new Promise<Uint8Array>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = (): void => finish(abortError(signal!));
      const finish = (err: BerthError | undefined, value?: Uint8Array): void => {
        if (!this.pending.delete(streamId)) return;
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(value!);
      };
      this.pending.set(streamId, {
        resolve: (v) => finish(undefined, v),
        reject: (e) => finish(e),
      });
      if (timeoutMs !== undefined && timeoutMs > 0) {
        timer = setTimeout(
          () => finish(errors.deadlineExceeded('ttrpc.deadline_exceeded', `ttrpc: ${service}/${method}: deadline of ${timeoutMs}ms exceeded`)),
          timeoutMs,
        );
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.writer.write(frame);
    });
  }

  /** Closes the connection; pending calls fail with Unavailable. */
  close(): void {
    this.teardown(undefined);
    this.socket.destroy();
  }

  private onFrame(h: FrameHeader, payload: Buffer): void {
    if (h.type === MessageType.Response) {
      let status: { code: number; message: string; details: Any[] } | undefined;
      let body: Uint8Array;
      try {
        const res = decodeResponse(payload);
        status = res.status;
        body = res.payload;
      } catch (err) {
        this.decoder.fail(errors.internal('ttrpc.bad_response', `ttrpc: undecodable response on stream ${h.streamId}: ${String(err)}`, err));
        return;
      }
      if (status && status.code !== 0) this.settle(h.streamId, undefined, fromStatus(status.code, status.message, codeFromDetails(status.details)));
      else this.settle(h.streamId, body);
      return;
    }
    if (h.type === MessageType.Data) {
      // Streaming is not used by berth; data for a unary call is a peer bug but harmless.
      return;
    }
    this.decoder.fail(errors.internal('ttrpc.bad_frame', `ttrpc: unexpected message type ${h.type} on stream ${h.streamId}`));
  }

  private settle(streamId: number, payload: Uint8Array | undefined, err?: BerthError): void {
    const p = this.pending.get(streamId);
    if (!p) return; // timed out or aborted already
    if (err) p.reject(err);
    else p.resolve(payload!);
  }

  private teardown(err: BerthError | undefined): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeReason = err ?? errors.unavailable('ttrpc.closed', 'ttrpc: client closed');
    this.decoder.fail();
    const failure =
      err && hasCode(err, 'ttrpc.closed') ? err : errors.unavailable('ttrpc.closed', `ttrpc: connection closed${err ? `: ${err.message}` : ''}`, err);
    for (const p of [...this.pending.values()]) p.reject(failure);
    this.pending.clear();
    this.socket.destroy();
    this.resolveClosed(err);
    this.emit('close', err);
  }
}

function abortError(signal: AbortSignal): BerthError {
  const reason: unknown = signal.reason;
  if (reason instanceof BerthError) return reason;
  return errors.canceled('ttrpc.canceled', `ttrpc: call canceled${reason instanceof Error ? `: ${reason.message}` : ''}`, reason);
}
