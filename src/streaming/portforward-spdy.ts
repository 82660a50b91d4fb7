/**
 * port-forward over SPDY (kubelet's portforward httpstream handler): for every forwarded
 * connection the client opens a data stream and an error stream sharing `requestID` and
 * `port` headers. When both are there we hand the data stream to the backend; failures are
 * written as text on the error stream.
 */
import type { Logger } from '../log.js';
import type { SpdyConnection, SpdyStream } from './spdy/connection.js';
import { RstStatus } from './spdy/frames.js';
import { HDR_PORT, HDR_REQUEST_ID, HDR_STREAM_TYPE } from './protocol.js';
import { finishWritable } from './session.js';
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
  log: Logger;
}

export function parsePort(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,5}$/.test(value)) return undefined;
  const port = Number(value);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** Resolves when the session closes. */
export function servePortForwardSpdy(o: SpdyPortForwardOptions): Promise<void> {
  const { conn, log } = o;
  const pairs = new Map<string, Pair>();

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
      void forward(o, port, pair.data, pair.error);
    }
  });

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
