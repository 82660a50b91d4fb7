/**
 * exec/attach over SPDY (kubelet's remotecommand httpstream handler): the client opens one
 * stream per role, named by the `streamType` header; we wait for the expected set, run the
 * command, then report the outcome on the error stream and close the session.
 */
import type { Logger } from '../log.js';
import type { SpdyConnection, SpdyStream } from './spdy/connection.js';
import { RstStatus } from './spdy/frames.js';
import { HDR_STREAM_TYPE, supportsResize } from './protocol.js';
import { ResizeQueue } from './resize.js';
import { finishWritable, runRemoteCommand, type RemoteCommandRequest } from './session.js';
import { encodeStatus } from './status.js';
import type { StreamingBackend } from './types.js';

type Role = 'error' | 'stdin' | 'stdout' | 'stderr' | 'resize';
const ROLES: readonly Role[] = ['error', 'stdin', 'stdout', 'stderr', 'resize'];

export interface SpdyRemoteCommandOptions {
  conn: SpdyConnection;
  protocol: string;
  request: RemoteCommandRequest;
  backend: StreamingBackend;
  streamCreationTimeoutMs: number;
  log: Logger;
}

export async function serveRemoteCommandSpdy(o: SpdyRemoteCommandOptions): Promise<void> {
  const { conn, protocol, request, log } = o;
  const want = request.request;
  const expected = new Set<Role>(['error']);
  if (want.stdin) expected.add('stdin');
  if (want.stdout) expected.add('stdout');
  if (want.stderr && !want.tty) expected.add('stderr');
  if (want.tty && supportsResize(protocol)) expected.add('resize');

  const streams = await collectStreams(conn, expected, o.streamCreationTimeoutMs, log);
  if (!streams) {
    log.warn('timed out waiting for client to create streams', { protocol });
    conn.close();
    return;
  }

  const resize = new ResizeQueue();
  streams.resize?.on('data', (d: Buffer) => resize.write(d));
  streams.resize?.on('end', () => resize.end());
  streams.resize?.on('close', () => resize.end());
  if (!streams.resize) resize.end();
  const abort = new AbortController();
  conn.once('close', () => abort.abort());

  const status = await runRemoteCommand(
    o.backend,
    request,
    {
      stdin: streams.stdin,
      stdout: streams.stdout,
      stderr: streams.stderr,
      tty: want.tty,
      resize,
      signal: abort.signal,
    },
    log,
  );
  resize.end();
  await Promise.all([finishWritable(streams.stdout), finishWritable(streams.stderr)]);
  const bytes = encodeStatus(protocol, status);
  const err = streams.error as SpdyStream;
  if (bytes.length > 0 && !err.destroyed) err.write(bytes);
  await finishWritable(err);
  streams.stdin?.resume();
  conn.close();
}

async function collectStreams(
  conn: SpdyConnection,
  expected: Set<Role>,
  timeoutMs: number,
  log: Logger,
): Promise<Partial<Record<Role, SpdyStream>> | undefined> {
  const got: Partial<Record<Role, SpdyStream>> = {};
  return new Promise((resolve) => {
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      conn.off('stream', onStream);
      conn.off('close', onClose);
      resolve(ok ? got : undefined);
    };
    const onStream = (stream: SpdyStream) => {
      const type = stream.headers[HDR_STREAM_TYPE] as Role | undefined;
      if (!type || !ROLES.includes(type) || got[type]) {
        log.warn('unexpected SPDY stream', { streamType: type ?? '' });
        stream.reset(RstStatus.REFUSED_STREAM);
        return;
      }
      got[type] = stream;
      if ([...expected].every((r) => got[r])) finish(true);
    };
    const onClose = () => finish(false);
    const timer = setTimeout(() => finish(false), timeoutMs);
    conn.on('stream', onStream);
    conn.once('close', onClose);
  });
}
