/**
 * The CRI streaming server: GetExec/GetAttach/GetPortForward cache the request under a
 * single-use token and return a URL; the client connects to it and upgrades to SPDY/3.1 or
 * WebSocket (kubelet's pkg/kubelet/cri/streaming server, same paths and status codes).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws';
import { errors } from '../errors.js';
import { log as rootLog, type Logger } from '../log.js';
import { maxForwardedPairs, servePortForwardSpdy, parsePort } from './portforward-spdy.js';
import {
  HEADER_ACCEPTED_PROTOCOL_VERSIONS,
  HEADER_PROTOCOL_VERSION,
  RC_V1,
  SPDY_PORTFORWARD_PROTOCOLS,
  SPDY_REMOTECOMMAND_PROTOCOLS,
  SPDY_UPGRADE,
  SPDY_TUNNEL_PORTFORWARD,
  negotiate,
} from './protocol.js';
import { serveRemoteCommandSpdy } from './remotecommand-spdy.js';
import { IdleWatcher, socketTraffic } from './idle.js';
import { MAX_STREAMS, SpdyConnection } from './spdy/connection.js';
import { RequestCache } from './tokens.js';
import type { AttachRequest, CachedRequest, ExecRequest, PortForwardRequest, StreamingBackend } from './types.js';
import { WS_PORTFORWARD_PROTOCOLS, WS_REMOTECOMMAND_PROTOCOLS, serveRemoteCommandWs, servePortForwardWs } from './websocket.js';

export interface StreamingServerOptions {
  /** host:port to listen on; port 0 picks a free one. IPv6 as [::1]:0. */
  address: string;
  backend: StreamingBackend;
  /** How long a returned URL stays valid (kubelet: 1 minute). */
  tokenTtlMs?: number;
  /** How long the client has to open all its streams after upgrading (kubelet: 30 s); limits.streamCreationTimeoutMs wins. */
  streamCreationTimeoutMs?: number;
  /** Base URL put into returned URLs, e.g. when listening on 0.0.0.0; default derived from the bound address. */
  advertiseUrl?: string;
  log?: Logger;
  /** Limits applied to sessions opened from now on (setLimits() changes them). */
  limits?: Partial<StreamingLimits>;
}

export interface StreamingLimits {
  /** A session that moved no byte either way this long is closed (kubelet: 4 h); 0 never. */
  idleTimeoutMs: number;
  /** How long the client has to open all its streams after upgrading (kubelet: 30 s). */
  streamCreationTimeoutMs: number;
  /** Sessions (upgraded connections) open at once; more get HTTP 429. */
  maxConnections: number;
  /** SPDY streams one session may have open; more are refused. */
  maxStreamsPerConnection: number;
}

export const DEFAULT_LIMITS: StreamingLimits = {
  idleTimeoutMs: 4 * 3600_000,
  streamCreationTimeoutMs: 30_000,
  maxConnections: 256,
  maxStreamsPerConnection: MAX_STREAMS,
};

/** TCP connections beyond the session cap that may still be in their HTTP handshake. */
const HANDSHAKE_HEADROOM = 32;
/** Largest WebSocket message accepted (Kubernetes clients send stdin and port data in ≤ 32 KiB messages). */
export const MAX_WS_MESSAGE = 4 * 1024 * 1024;

const PATH_RE = /^\/(exec|attach|portforward)\/([A-Za-z0-9_-]{1,128})$/;

export class StreamingServer {
  private readonly backend: StreamingBackend;
  private readonly cache: RequestCache;
  private readonly log: Logger;
  private limits: StreamingLimits;
  /** Upgraded connections (sessions) open now. */
  private sessions = 0;
  private http: http.Server;
  /** Listeners replaced by rebind(): closed to new connections, their sessions still running. */
  private readonly retired = new Set<http.Server>();
  /** Subprotocol we negotiated for each pending WebSocket upgrade (ws would otherwise echo the client's first). */
  private readonly chosenProtocol = new WeakMap<http.IncomingMessage, string>();
  private readonly wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: MAX_WS_MESSAGE,
    handleProtocols: (_offered, req) => this.chosenProtocol.get(req) || false,
  });
  private readonly sockets = new Set<Duplex>();
  private baseUrl = '';

  constructor(private readonly opts: StreamingServerOptions) {
    this.backend = opts.backend;
    this.cache = new RequestCache(opts.tokenTtlMs ?? 60_000);
    this.log = opts.log ?? rootLog.child({ component: 'streaming' });
    this.limits = {
      ...DEFAULT_LIMITS,
      ...(opts.streamCreationTimeoutMs !== undefined ? { streamCreationTimeoutMs: opts.streamCreationTimeoutMs } : {}),
      ...opts.limits,
    };
    this.http = this.createHttp();
  }

  /** New limits for sessions opened from now on (config reload); open sessions keep theirs. */
  setLimits(limits: Partial<StreamingLimits>): void {
    this.limits = { ...this.limits, ...limits };
    this.http.maxConnections = this.limits.maxConnections + HANDSHAKE_HEADROOM;
  }

  /** Sessions open now (upgraded connections). */
  get sessionCount(): number {
    return this.sessions;
  }

  private get creationTimeoutMs(): number {
    return this.limits.streamCreationTimeoutMs;
  }

  private createHttp(): http.Server {
    const server = http.createServer((req, res) => this.onRequest(req, res));
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    server.on('connection', (socket: Duplex) => this.track(socket));
    server.on('clientError', (_err, socket: Duplex) => writeHttpError(socket, 400, 'bad request'));
    // A hard ceiling on TCP connections (Node closes those beyond it at once); sessions are
    // capped below it, with a message, in onUpgrade.
    server.maxConnections = this.limits.maxConnections + HANDSHAKE_HEADROOM;
    return server;
  }

  private static async listen(server: http.Server, address: string): Promise<string> {
    const { host, port } = splitAddress(address);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address() as AddressInfo;
    const h = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    return `http://${h}:${addr.port}`;
  }

  async start(): Promise<void> {
    const url = await StreamingServer.listen(this.http, this.opts.address);
    this.baseUrl = (this.opts.advertiseUrl ?? url).replace(/\/$/, '');
    this.log.info('streaming server listening', { url: this.baseUrl });
  }

  /**
   * Listen on another address (config reload). The new listener is bound first: if that fails
   * this throws and nothing changes. Then new URLs name the new address, the old listener
   * stops accepting, and sessions already open on it go on until they end. URLs handed out
   * before and not yet used are refused by the closed listener; clients ask again.
   */
  async rebind(address: string): Promise<void> {
    const next = this.createHttp();
    const url = await StreamingServer.listen(next, address);
    const old = this.http;
    this.http = next;
    this.opts.address = address;
    this.baseUrl = (this.opts.advertiseUrl ?? url).replace(/\/$/, '');
    this.retired.add(old);
    old.close(() => this.retired.delete(old));
    this.log.info('streaming server listening', { url: this.baseUrl });
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    for (const ws of this.wss.clients) ws.terminate();
    for (const old of this.retired) old.close();
    this.retired.clear();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  /** Base URL of the server (after start()). */
  get url(): string {
    return this.baseUrl;
  }

  getExec(req: ExecRequest): string {
    if (!req.containerId) throw errors.invalidArgument('streaming.missing_container_id', 'exec: container id is required');
    if (!req.cmd || req.cmd.length === 0) throw errors.invalidArgument('streaming.missing_cmd', 'exec: cmd is required');
    validateStreams('exec', req);
    const request: ExecRequest = { containerId: req.containerId, cmd: [...req.cmd], tty: req.tty, stdin: req.stdin, stdout: req.stdout, stderr: req.stderr };
    return this.urlFor('exec', { kind: 'exec', request });
  }

  getAttach(req: AttachRequest): string {
    if (!req.containerId) throw errors.invalidArgument('streaming.missing_container_id', 'attach: container id is required');
    validateStreams('attach', req);
    const request: AttachRequest = { containerId: req.containerId, tty: req.tty, stdin: req.stdin, stdout: req.stdout, stderr: req.stderr };
    return this.urlFor('attach', { kind: 'attach', request });
  }

  getPortForward(req: PortForwardRequest): string {
    if (!req.podSandboxId) throw errors.invalidArgument('streaming.missing_pod_sandbox_id', 'port-forward: pod sandbox id is required');
    for (const p of req.port ?? []) {
      if (!Number.isInteger(p) || p < 1 || p > 65535) throw errors.invalidArgument('streaming.bad_port', `port-forward: invalid port ${p}`);
    }
    return this.urlFor('portforward', { kind: 'portforward', request: { podSandboxId: req.podSandboxId, port: [...(req.port ?? [])] } });
  }

  private urlFor(path: string, req: CachedRequest): string {
    if (!this.baseUrl) throw errors.failedPrecondition('streaming.not_started', 'streaming server is not running');
    return `${this.baseUrl}/${path}/${this.cache.insert(req)}`;
  }

  private track(socket: Duplex): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  /** Looks the token up (consuming it, as kubelet does, whether or not the upgrade succeeds). */
  private lookup(url: string | undefined): { request: CachedRequest; query: URLSearchParams } | { status: number; message: string } {
    const u = new URL(url ?? '/', 'http://streaming.invalid');
    const m = PATH_RE.exec(u.pathname);
    if (!m) return { status: 404, message: 'not found' };
    const request = this.cache.consume(m[2] as string);
    if (!request || request.kind !== m[1]) return { status: 404, message: 'token not found or expired' };
    return { request, query: u.searchParams };
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const found = this.lookup(req.url);
    const [status, message] = 'status' in found ? [found.status, found.message] : [400, 'unable to upgrade: missing upgrade headers in request'];
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(message) + 1 });
    res.end(message + '\n');
  }

  private onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', (err: Error) => this.log.debug('streaming socket error', { err: err.message }));
    // Checked before the token is consumed: the client may retry the same URL while it is valid.
    if (this.sessions >= this.limits.maxConnections) {
      this.log.warn('streaming session refused: too many open', { open: this.sessions, limit: this.limits.maxConnections });
      writeHttpError(
        socket,
        429,
        `streaming server busy: ${this.sessions} sessions open, the limit is ${this.limits.maxConnections} (streaming.max_connections); try again later`,
      );
      return;
    }
    const found = this.lookup(req.url);
    if ('status' in found) {
      writeHttpError(socket, found.status, found.message);
      return;
    }
    const upgrade = (req.headers.upgrade ?? '').toLowerCase();
    const connection = (req.headers.connection ?? '').toLowerCase();
    if (!connection.split(',').some((t) => t.trim() === 'upgrade')) {
      writeHttpError(socket, 400, 'unable to upgrade: missing upgrade headers in request');
      return;
    }
    if (upgrade === 'websocket') this.upgradeWebSocket(req, socket, head, found.request, found.query);
    else if (upgrade === SPDY_UPGRADE.toLowerCase()) this.upgradeSpdy(req, socket, head, found.request);
    else writeHttpError(socket, 400, `unable to upgrade: unsupported upgrade protocol ${JSON.stringify(req.headers.upgrade ?? '')}`);
  }

  /**
   * Counts an upgraded connection as a session until its socket closes, and closes it when it
   * stays idle (no byte either way) for the idle timeout.
   */
  private openSession(socket: Duplex, kind: string, transport: string): void {
    this.sessions++;
    const idleMs = this.limits.idleTimeoutMs;
    const watcher = new IdleWatcher(socketTraffic(socket), idleMs, () => {
      this.log.info('closing idle streaming session', { kind, transport, idleTimeoutMs: idleMs });
      socket.destroy();
    });
    socket.once('close', () => {
      this.sessions--;
      watcher.stop();
    });
  }

  private upgradeSpdy(req: http.IncomingMessage, socket: Duplex, head: Buffer, cached: CachedRequest): void {
    const offered = headerValues(req.headers[HEADER_PROTOCOL_VERSION.toLowerCase()]);
    if (offered.length === 0) {
      writeHttpError(socket, 400, `unable to upgrade: ${HEADER_PROTOCOL_VERSION} is required`);
      return;
    }
    const supported = cached.kind === 'portforward' ? SPDY_PORTFORWARD_PROTOCOLS : SPDY_REMOTECOMMAND_PROTOCOLS;
    const protocol = negotiate(offered, supported);
    if (!protocol) {
      writeHttpError(
        socket,
        403,
        `unable to upgrade: unable to negotiate protocol: client supports ${JSON.stringify(offered)}, server accepts ${JSON.stringify(supported)}`,
        supported.map((p) => [HEADER_ACCEPTED_PROTOCOL_VERSIONS, p]),
      );
      return;
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${SPDY_UPGRADE}\r\n${HEADER_PROTOCOL_VERSION}: ${protocol}\r\n\r\n`);
    if (head.length > 0) socket.unshift(head);
    this.openSession(socket, cached.kind, 'spdy');
    const log = this.log.child({ kind: cached.kind, protocol, transport: 'spdy' });
    const conn = new SpdyConnection(socket, { role: 'server', log, maxStreams: this.limits.maxStreamsPerConnection });
    const done =
      cached.kind === 'portforward'
        ? servePortForwardSpdy({
            conn,
            podSandboxId: cached.request.podSandboxId,
            backend: this.backend,
            streamCreationTimeoutMs: this.creationTimeoutMs,
            maxStreams: this.limits.maxStreamsPerConnection,
            log,
          })
        : serveRemoteCommandSpdy({ conn, protocol, request: cached, backend: this.backend, streamCreationTimeoutMs: this.creationTimeoutMs, log });
    done.catch((err: unknown) => {
      log.error('streaming session failed', { err: err instanceof Error ? err.message : String(err) });
      conn.destroy();
    });
  }

  private upgradeWebSocket(req: http.IncomingMessage, socket: Duplex, head: Buffer, cached: CachedRequest, query: URLSearchParams): void {
    const offered = headerValues(req.headers['sec-websocket-protocol']);
    if (cached.kind === 'portforward' && offered.includes(SPDY_TUNNEL_PORTFORWARD)) {
      this.tunnelSpdy(req, socket, head, cached.request.podSandboxId);
      return;
    }
    const supported = cached.kind === 'portforward' ? WS_PORTFORWARD_PROTOCOLS : WS_REMOTECOMMAND_PROTOCOLS;
    // No subprotocol at all means the oldest binary protocol, as in wsstream.
    const protocol = offered.length === 0 ? (cached.kind === 'portforward' ? '' : RC_V1) : negotiate(offered, supported);
    if (protocol === undefined) {
      writeHttpError(
        socket,
        400,
        `unable to upgrade: requested protocol(s) ${JSON.stringify(offered)} are not supported; supports ${JSON.stringify(supported)}`,
      );
      return;
    }
    let ports: number[] = [];
    if (cached.kind === 'portforward') {
      const fromQuery = query
        .getAll('ports')
        .flatMap((v) => v.split(','))
        .filter((v) => v.trim() !== '');
      const parsed = fromQuery.map((v) => parsePort(v.trim()));
      if (parsed.some((p) => p === undefined)) {
        writeHttpError(socket, 400, `invalid ports ${JSON.stringify(fromQuery)}`);
        return;
      }
      ports = fromQuery.length > 0 ? (parsed as number[]) : cached.request.port;
      if (ports.length === 0) {
        writeHttpError(socket, 400, 'at least one port must be specified');
        return;
      }
      const most = maxForwardedPairs(this.limits.maxStreamsPerConnection);
      if (ports.length > most) {
        writeHttpError(socket, 400, `too many ports: ${ports.length}, at most ${most} per session (streaming.max_streams_per_connection / 2)`);
        return;
      }
    }
    const log = this.log.child({ kind: cached.kind, protocol, transport: 'websocket' });
    this.chosenProtocol.set(req, protocol);
    this.wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      this.openSession(socket, cached.kind, 'websocket');
      const done =
        cached.kind === 'portforward'
          ? servePortForwardWs({ ws, protocol, podSandboxId: cached.request.podSandboxId, ports, backend: this.backend, log })
          : serveRemoteCommandWs({ ws, protocol, request: cached, backend: this.backend, log });
      done.catch((err: unknown) => {
        log.error('streaming session failed', { err: err instanceof Error ? err.message : String(err) });
        ws.terminate();
      });
    });
  }
  /**
   * kubectl 1.30+ tunnels the SPDY port-forward protocol through a WebSocket: subprotocol
   * `SPDY/3.1+portforward.k8s.io`, binary messages carrying the raw SPDY byte stream.
   */
  private tunnelSpdy(req: http.IncomingMessage, socket: Duplex, head: Buffer, podSandboxId: string): void {
    const log = this.log.child({ kind: 'portforward', protocol: SPDY_TUNNEL_PORTFORWARD, transport: 'websocket' });
    this.chosenProtocol.set(req, SPDY_TUNNEL_PORTFORWARD);
    // '/' is not a token character, so ws rejects this subprotocol name while parsing the
    // request; hand it a placeholder token instead. The response still names the real
    // subprotocol (handleProtocols), which is what the Go client checks.
    req.headers['sec-websocket-protocol'] = 'spdy-tunnel';
    this.wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      this.openSession(socket, 'portforward', 'websocket');
      const duplex = createWebSocketStream(ws);
      duplex.on('error', (err: Error) => log.debug('tunnel error', { err: err.message }));
      const conn = new SpdyConnection(duplex, { role: 'server', log, maxStreams: this.limits.maxStreamsPerConnection });
      servePortForwardSpdy({
        conn,
        podSandboxId,
        backend: this.backend,
        streamCreationTimeoutMs: this.creationTimeoutMs,
        maxStreams: this.limits.maxStreamsPerConnection,
        log,
      }).catch((err: unknown) => {
        log.error('streaming session failed', { err: err instanceof Error ? err.message : String(err) });
        conn.destroy();
      });
    });
  }
}

function validateStreams(what: string, req: { tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }): void {
  if (req.tty && req.stderr) throw errors.invalidArgument('streaming.tty_with_stderr', `${what}: tty and stderr cannot both be true`);
  if (!req.stdin && !req.stdout && !req.stderr) throw errors.invalidArgument('streaming.no_streams', `${what}: one of stdin, stdout, or stderr must be set`);
}

function headerValues(v: string | string[] | undefined): string[] {
  const list = v === undefined ? [] : Array.isArray(v) ? v : [v];
  return list
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function splitAddress(address: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  if (!m) throw errors.invalidArgument('streaming.bad_address', `streaming address ${JSON.stringify(address)} is not host:port`);
  return { host: m[1] as string, port: Number(m[2]) };
}

const REASONS: Record<number, string> = { 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found', 429: 'Too Many Requests' };

/** A plain HTTP error on a socket that was offered for upgrade, then close it. */
function writeHttpError(socket: Duplex, status: number, message: string, extra: [string, string][] = []): void {
  if (socket.destroyed || !socket.writable) return;
  const body = message + '\n';
  const headers = [
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}`,
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    ...extra.map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(headers.join('\r\n') + '\r\n\r\n' + body);
}
