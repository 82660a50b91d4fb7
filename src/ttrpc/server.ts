/**
 * ttrpc server: unary methods registered by service full name and method name.
 *
 * Behaviour on bad input follows Go's containerd/ttrpc so a Go client sees the same codes:
 * - even or non-increasing stream id, undecodable Request → InvalidArgument on that stream;
 * - payload over 4 MiB → skipped without buffering, then ResourceExhausted on that stream;
 * - unknown service or method → Unimplemented;
 * - Data frames (streaming is not supported) → InvalidArgument "StreamID is no longer active";
 * - unknown message types are ignored (forward compatibility, as in Go).
 * One deliberate difference: a header whose reserved first byte is set (announced length
 * ≥ 16 MiB) closes the connection instead of skipping up to 4 GiB; it can only be garbage.
 *
 * Socket files: `listen({ path })` removes a stale *socket* at that path (anything else is an
 * error), binds, then chmods it to `mode` (default 0600). Connecting to a unix socket needs
 * write permission on it, so with the usual umask (022) nobody else can connect during the
 * short window before the chmod. Callers that want more put the socket in a 0700 directory
 * (see `ensurePrivateDir`), which is what shim sockets do.
 */

import { lstat, mkdir, chmod, unlink, stat } from 'node:fs/promises';
import net from 'node:net';
import { decodeRequest, encodeResponse, type Request } from './envelope.js';
import { BerthError, errors, StatusCode, toBerthError, type ErrorCode } from '../errors.js';
import { errorInfoDetails } from './status-details.js';
import { log as rootLog, type Logger } from '../log.js';
import { encodeFrame, FrameDecoder, MESSAGE_LENGTH_MAX, MessageType, type FrameHeader } from './frame.js';
import { metadataFromWire, type Metadata } from './metadata.js';
import { FrameWriter } from './writer.js';
import { peerCredentials, requireSameUser, type PeerCheck, type PeerCredentials } from './peercred.js';

export interface CallContext {
  service: string;
  method: string;
  metadata: Metadata;
  /** Aborted when the request's timeout_nano passes, the connection drops or the server is shut down. */
  signal: AbortSignal;
  /** Absolute deadline (Date.now() based) if the client sent one. */
  deadline?: number;
  peer?: PeerCredentials;
}

/** A raw method: encoded request message in, encoded response message out. */
export type MethodHandler = (ctx: CallContext, payload: Uint8Array) => Promise<Uint8Array> | Uint8Array;

export interface ServerOptions {
  /**
   * Which peers may connect. Default: `requireSameUser()` (peer uid == our euid, read with
   * SO_PEERCRED). Pass `allowAnyPeer` to serve sockets whose credentials can't be read.
   */
  peerCheck?: PeerCheck;
  logger?: Logger;
}

export type ListenTarget = string | { path: string; mode?: number } | { fd: number } | net.Server;

interface Conn {
  socket: net.Socket;
  writer: FrameWriter;
  peer: PeerCredentials | undefined;
  active: Map<number, AbortController>;
  lastStreamId: number;
}

export class TtrpcServer {
  private readonly services = new Map<string, Map<string, MethodHandler>>();
  private readonly conns = new Set<Conn>();
  private readonly listeners: net.Server[] = [];
  private readonly ownedPaths: string[] = [];
  private readonly peerCheck: PeerCheck;
  private readonly log: Logger;
  private closing = false;
  /** Set while close() waits for connections to go away. */
  private onConnGone: (() => void) | undefined;

  constructor(opts: ServerOptions = {}) {
    this.peerCheck = opts.peerCheck ?? requireSameUser();
    this.log = opts.logger ?? rootLog.child({ component: 'ttrpc' });
  }

  /** Registers (or extends) a service by its proto full name, e.g. "containerd.task.v2.Task". */
  register(service: string, methods: Readonly<Record<string, MethodHandler>>): void {
    let table = this.services.get(service);
    if (!table) this.services.set(service, (table = new Map()));
    for (const [name, fn] of Object.entries(methods)) {
      if (table.has(name)) throw errors.alreadyExists('ttrpc.duplicate_method', `ttrpc: ${service}/${name} registered twice`);
      table.set(name, fn);
    }
  }

  /**
   * Starts accepting connections. A string or `{path}` binds a unix socket (see file comment
   * for permissions); `{fd}` listens on an inherited, already bound socket; a net.Server is
   * used as is (its 'connection' events are served). Resolves once listening. Every listener,
   * including a passed-in net.Server or fd, is closed by close()/shutdown().
   */
  async listen(target: ListenTarget): Promise<void> {
    if (this.closing) throw errors.unavailable('ttrpc.server_closed', 'ttrpc: server closed');
    if (target instanceof net.Server) {
      target.on('connection', (s: net.Socket) => this.serveConnection(s));
      this.listeners.push(target);
      return;
    }
    const srv = net.createServer((s) => this.serveConnection(s));
    srv.on('error', (err) => this.log.error('ttrpc listener error', { err }));
    if (typeof target === 'object' && 'fd' in target) {
      await listenOn(srv, { fd: target.fd });
      this.listeners.push(srv);
      return;
    }
    const path = typeof target === 'string' ? target : target.path;
    const mode = typeof target === 'string' ? 0o600 : (target.mode ?? 0o600);
    await removeStaleSocket(path);
    await listenOn(srv, { path });
    this.listeners.push(srv);
    this.ownedPaths.push(path);
    await chmod(path, mode);
  }

  /** Serves one accepted or inherited connection. */
  serveConnection(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const peer = peerCredentials(socket);
    let allowed = false;
    try {
      allowed = this.peerCheck(peer);
    } catch (err) {
      this.log.warn('ttrpc peer check threw', { err });
    }
    if (!allowed) {
      this.log.warn('ttrpc connection refused by peer check', { pid: peer?.pid, uid: peer?.uid });
      socket.destroy();
      return;
    }
    const conn: Conn = { socket, writer: new FrameWriter(socket), peer, active: new Map(), lastStreamId: 0 };
    this.conns.add(conn);
    const decoder = new FrameDecoder({
      frame: (h, p) => this.onFrame(conn, h, p),
      oversized: (h) =>
        this.respondStatus(conn, h.streamId, StatusCode.ResourceExhausted, `message length ${h.length} exceed maximum message size of ${MESSAGE_LENGTH_MAX}`),
      protocolError: (err) => {
        this.log.warn('ttrpc closing connection after protocol error', { err: err.message, pid: peer?.pid });
        socket.destroy();
      },
    });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
    socket.on('error', (err) => this.log.debug('ttrpc connection error', { err }));
    socket.on('close', () => {
      decoder.fail();
      this.conns.delete(conn);
      for (const ac of conn.active.values()) ac.abort(errors.canceled('ttrpc.conn_closed', 'ttrpc: connection closed'));
      conn.active.clear();
      this.onConnGone?.();
    });
  }

  /**
   * Graceful stop: stop accepting, answer new calls with Unavailable, let in-flight calls
   * finish, then end each connection once its last response is written. Connections still
   * open after `timeoutMs` are destroyed (their handlers aborted). Removes socket files this
   * server created.
   */
  async close(timeoutMs = 5000): Promise<void> {
    this.closing = true;
    await this.closeListeners();
    // end() rather than destroy(): it flushes responses already queued on the socket.
    for (const c of this.conns) if (c.active.size === 0) c.socket.end();
    if (this.conns.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.onConnGone = () => {
          if (this.conns.size > 0) return;
          clearTimeout(timer);
          resolve();
        };
      });
      this.onConnGone = undefined;
    }
    await this.shutdown();
  }

  /** Immediate stop: close listeners and all connections, aborting running handlers. */
  async shutdown(): Promise<void> {
    this.closing = true;
    for (const c of [...this.conns]) {
      for (const ac of c.active.values()) ac.abort(errors.unavailable('ttrpc.server_closed', 'ttrpc: server shut down'));
      c.socket.destroy();
    }
    await this.closeListeners();
  }

  private async closeListeners(): Promise<void> {
    // net.Server.close() stops accepting at once, but its callback waits for every accepted
    // connection to end; connections are tracked (and drained) here, so don't wait for it.
    for (const l of this.listeners.splice(0)) if (l.listening) l.close();
    for (const p of this.ownedPaths.splice(0)) await unlink(p).catch(() => undefined);
  }

  private onFrame(conn: Conn, h: FrameHeader, payload: Buffer): void {
    const id = h.streamId;
    if (id % 2 !== 1) {
      this.respondStatus(conn, id, StatusCode.InvalidArgument, 'StreamID must be odd for client initiated streams');
      return;
    }
    if (h.type === MessageType.Data) {
      this.respondStatus(conn, id, StatusCode.InvalidArgument, 'StreamID is no longer active');
      return;
    }
    if (h.type !== MessageType.Request) return; // unknown types: ignored, as Go does
    if (id <= conn.lastStreamId) {
      this.respondStatus(conn, id, StatusCode.InvalidArgument, 'StreamID cannot be re-used and must increment');
      return;
    }
    conn.lastStreamId = id;
    let req: Request;
    try {
      req = decodeRequest(payload);
    } catch (err) {
      this.respondStatus(conn, id, StatusCode.InvalidArgument, `unmarshal request error: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    if (this.closing) {
      this.respondStatus(conn, id, StatusCode.Unavailable, 'ttrpc: server closed');
      return;
    }
    const handler = this.services.get(req.service)?.get(req.method);
    if (!handler) {
      const what = this.services.has(req.service) ? `service ${req.service}: method ${req.method}` : `service ${req.service}`;
      this.respondStatus(conn, id, StatusCode.Unimplemented, `${what} not implemented`);
      return;
    }
    void this.dispatch(conn, id, req, handler);
  }

  private async dispatch(conn: Conn, id: number, req: Request, handler: MethodHandler): Promise<void> {
    const ac = new AbortController();
    conn.active.set(id, ac);
    let timer: NodeJS.Timeout | undefined;
    let deadline: number | undefined;
    if (req.timeoutNano > 0n) {
      // setTimeout caps at ~24.8 days; longer deadlines are effectively none.
      const ms = Number(req.timeoutNano / 1_000_000n);
      deadline = Date.now() + ms;
      if (ms < 0x7fffffff) {
        timer = setTimeout(() => ac.abort(errors.deadlineExceeded('ttrpc.deadline_exceeded', `ttrpc: ${req.service}/${req.method}: deadline exceeded`)), ms);
      }
    }
    const ctx: CallContext = {
      service: req.service,
      method: req.method,
      metadata: metadataFromWire(req.metadata),
      signal: ac.signal,
      peer: conn.peer,
      ...(deadline !== undefined ? { deadline } : {}),
    };
    let frame: Buffer;
    try {
      const out = await handler(ctx, req.payload);
      frame = responseFrame(id, 0, '', out);
    } catch (err) {
      const st = toStatus(err, ac.signal);
      if (st.code === StatusCode.Internal)
        this.log.warn('ttrpc handler failed', { service: req.service, method: req.method, code: st.berthCode, err: st.message });
      frame = responseFrame(id, st.code, st.message, undefined, st.berthCode);
    } finally {
      if (timer) clearTimeout(timer);
    }
    if (conn.active.get(id) === ac) conn.active.delete(id);
    conn.writer.write(frame);
    if (this.closing && conn.active.size === 0) conn.socket.end();
  }

  private respondStatus(conn: Conn, id: number, code: number, message: string): void {
    conn.writer.write(responseFrame(id, code, message, undefined));
  }
}

/**
 * Encodes a Response frame; a too large success payload becomes a ResourceExhausted status. A
 * failure carries its BerthError code as an ErrorInfo detail (status-details.ts).
 */
function responseFrame(id: number, code: number, message: string, payload: Uint8Array | undefined, berthCode?: ErrorCode): Buffer {
  const details = berthCode === undefined ? [] : errorInfoDetails(berthCode);
  const body = encodeResponse({ status: { code, message, details }, ...(payload ? { payload } : {}) });
  if (body.length > MESSAGE_LENGTH_MAX) {
    return responseFrame(
      id,
      StatusCode.ResourceExhausted,
      `message length ${body.length} exceed maximum message size of ${MESSAGE_LENGTH_MAX}`,
      undefined,
      'ttrpc.message_too_large',
    );
  }
  return encodeFrame(id, MessageType.Response, 0, body);
}

/** Error thrown by a handler → status. Errors caused by our own abort carry the abort reason. */
function toStatus(err: unknown, signal: AbortSignal): { code: number; message: string; berthCode: ErrorCode } {
  if (err instanceof BerthError) return { code: err.status, message: err.message, berthCode: err.code };
  // A handler that gives up because we aborted it (deadline, shutdown) usually throws a plain
  // AbortError; report why it was aborted instead.
  if (signal.aborted && signal.reason instanceof BerthError) {
    return { code: signal.reason.status, message: signal.reason.message, berthCode: signal.reason.code };
  }
  const e = toBerthError(err);
  return { code: e.status, message: e.message, berthCode: e.code };
}

/** `{ fd }` is Node's listen(handle) form: an inherited, already bound socket. */
function listenOn(srv: net.Server, opts: { path: string } | { fd: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(errors.unavailable('ttrpc.listen', `ttrpc: listen: ${err.message}`, err));
    srv.once('error', onError);
    srv.listen(opts, () => {
      srv.off('error', onError);
      resolve();
    });
  });
}

/** Removes a leftover socket file at `path`; refuses to delete anything that is not a socket. */
async function removeStaleSocket(path: string): Promise<void> {
  const st = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (!st) return;
  if (!st.isSocket()) throw errors.alreadyExists('ttrpc.path_exists', `ttrpc: ${path} exists and is not a socket`);
  await unlink(path);
}

/**
 * Creates `dir` (and parents) if needed and makes sure it is a directory owned by us with mode
 * 0700, so sockets inside it are reachable only by our uid.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await stat(dir);
  const uid = process.geteuid?.() ?? 0;
  if (!st.isDirectory() || st.uid !== uid) {
    throw errors.failedPrecondition('ttrpc.socket_dir', `ttrpc: ${dir} is not a directory owned by uid ${uid}`);
  }
  if ((st.mode & 0o777) !== 0o700) await chmod(dir, 0o700);
}
