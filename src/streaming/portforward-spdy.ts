/**
 * port-forward over SPDY (kubelet's portforward httpstream handler): for every forwarded
 * connection the client opens a data stream and an error stream sharing `requestID` and
 * `port` headers. When both are there we hand the data stream to the backend; failures are
 * written as text on the error stream.
 *
 * A session forwards at most maxForwardedPairs(maxStreams) connections at once (pairs still
 * waiting for their partner count). A pair beyond that is refused with a message on its error
 * stream, which kubectl prints; its data stream is reset. The SPDY session's own stream cap
 * sits two streams above, so that refusal can still be said.
 */
import type { Logger } from '../log.js';
import type { SpdyConnection, SpdyStream } from './spdy/connection.js';
import { RstStatus } from './spdy/frames.js';
import { HDR_PORT, HDR_REQUEST_ID, HDR_STREAM_TYPE } from './protocol.js';
import { finishWritable } from './session.js';
import { MAX_STREAMS } from './spdy/connection.js';
import type { StreamingBackend } from './types.js';

interface Pair {
  data?: SpdyStream;
  error?: SpdyStream;
  timer: NodeJS.Timeout;
}

export interface SpdyPortForwardOptions {
  conn: SpdyConnection;
  podSandboxId: string;
  backend: StreamingBackend;
  streamCreationTimeoutMs: number;
  /** The session's SPDY stream cap (default MAX_STREAMS). */
  maxStreams?: number;
  log: Logger;
}

/** Forwarded connections a session may hold at once under a SPDY stream cap of `maxStreams`. */
export function maxForwardedPairs(maxStreams: number): number {
  return Math.max(1, Math.floor((maxStreams - 2) / 2));
}

/** Request ids refused recently, so their second stream is reset too (bounded memory). */
const REFUSED_MEMORY = 256;

export function parsePort(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,5}$/.test(value)) return undefined;
  const port = Number(value);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** Resolves when the session closes. */
export function servePortForwardSpdy(o: SpdyPortForwardOptions): Promise<void> {
  const { conn, log } = o;
  const pairs = new Map<string, Pair>();
  const limit = maxForwardedPairs(o.maxStreams ?? MAX_STREAMS);
  let active = 0;
  const refused = new Set<string>();
  let warned = false;

  const requestId = (s: SpdyStream, type: string): string => {
    const id = s.headers[HDR_REQUEST_ID];
    if (id !== undefined && id !== '') return id;
    // Clients before requestID paired an error stream with the data stream opened right after it.
    return String(type === 'error' ? s.id : s.id - 2);
  };

  conn.on('stream', (stream: SpdyStream) => {
    const type = stream.headers[HDR_STREAM_TYPE];
    const port = parsePort(stream.headers[HDR_PORT]);
    if ((type !== 'data' && type !== 'error') || port === undefined) {
      log.warn('rejecting port-forward stream', { streamType: type ?? '', port: stream.headers[HDR_PORT] ?? '' });
      stream.reset(RstStatus.REFUSED_STREAM);
      return;
    }
    const id = requestId(stream, type);
    let pair = pairs.get(id);
    if (!pair && (refused.has(id) || pairs.size + active >= limit)) {
      refuse(id, type, stream);
      return;
    }
    if (!pair) {
      const timer = setTimeout(() => {
        pairs.delete(id);
        const p = pair as Pair;
        if (p.error) p.error.end('timed out waiting for streams');
        p.data?.reset();
      }, o.streamCreationTimeoutMs);
      timer.unref();
      pair = { timer };
      pairs.set(id, pair);
    }
    if (pair[type]) {
      const msg = `error processing stream for request ${id}: ${type} stream already assigned`;
      log.warn(msg);
      if (pair.error && !pair.error.writableEnded) pair.error.write(msg);
      stream.reset(RstStatus.PROTOCOL_ERROR);
      return;
    }
    pair[type] = stream;
    if (pair.data && pair.error) {
      clearTimeout(pair.timer);
      pairs.delete(id);
      active++;
      void forward(o, port, pair.data, pair.error).finally(() => active--);
    }
  });

  /** Over the limit: the error stream says why and closes; the data stream is reset. */
  const refuse = (id: string, type: 'data' | 'error', stream: SpdyStream): void => {
    if (!warned) {
      warned = true;
      log.warn('port-forward connection refused: too many in this session', { limit });
    }
    if (refused.has(id)) refused.delete(id);
    else {
      refused.add(id);
      if (refused.size > REFUSED_MEMORY) refused.delete(refused.values().next().value as string);
    }
    if (type === 'data') {
      stream.reset(RstStatus.REFUSED_STREAM);
      return;
    }
    stream.refuseWith(
      `port-forward: ${limit} connections already forwarded in this session, the most it may have (streaming.max_streams_per_connection / 2); close some and retry`,
    );
  };

  return new Promise((resolve) => {
    conn.once('close', () => {
      for (const p of pairs.values()) clearTimeout(p.timer);
      pairs.clear();
      resolve();
    });
  });
}

async function forward(o: SpdyPortForwardOptions, port: number, data: SpdyStream, error: SpdyStream): Promise<void> {
  // The client half-closes the error stream right away; we only ever write to it.
  error.resume();
  try {
    await o.backend.portForward(o.podSandboxId, port, data);
  } catch (err) {
    const msg = `error forwarding port ${port} to pod ${o.podSandboxId}: ${err instanceof Error ? err.message : String(err)}`;
    o.log.warn('port-forward failed', { port, err: msg });
    if (!error.destroyed) error.write(msg);
  }
  await Promise.all([finishWritable(data), finishWritable(error)]);
}
