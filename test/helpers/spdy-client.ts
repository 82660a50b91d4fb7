/**
 * A minimal Kubernetes SPDY/3.1 streaming client for tests, built on berth's own framing and
 * session code in the client role: upgrade, open typed streams the way client-go does (error
 * first, then stdin, stdout, stderr, resize), collect output.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { SpdyConnection, type SpdyStream } from '../../src/streaming/spdy/connection.js';
import type { SpdyHeaders } from '../../src/streaming/spdy/headers.js';

export interface UpgradeResult {
  conn: SpdyConnection;
  protocol: string;
  socket: Duplex;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    readonly headers: http.IncomingHttpHeaders,
  ) {
    super(`HTTP ${status}: ${body.trim()}`);
  }
}

/** Upgrades to SPDY/3.1 offering `protocols`; rejects with HttpError when the server refuses. */
export function spdyUpgrade(url: string, protocols: string[], opts: { sendWindowUpdates?: boolean; upgradeHeader?: string } = {}): Promise<UpgradeResult> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST',
      headers: {
        Connection: 'Upgrade',
        Upgrade: opts.upgradeHeader ?? 'SPDY/3.1',
        ...(protocols.length > 0 ? { 'X-Stream-Protocol-Version': protocols } : {}),
      },
    });
    req.on('upgrade', (res: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      if (head.length > 0) socket.unshift(head);
      const conn = new SpdyConnection(socket, { role: 'client', sendWindowUpdates: opts.sendWindowUpdates ?? true });
      resolve({ conn, protocol: String(res.headers['x-stream-protocol-version'] ?? ''), socket });
    });
    req.on('response', (res: http.IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => reject(new HttpError(res.statusCode ?? 0, Buffer.concat(chunks).toString(), res.headers)));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Opens a stream and waits for the server's SYN_REPLY (client-go does the same). */
export function openStream(conn: SpdyConnection, headers: SpdyHeaders, timeoutMs = 5000): Promise<SpdyStream> {
  const stream = conn.createStream(headers);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no SYN_REPLY for ${JSON.stringify(headers)}`)), timeoutMs);
    stream.once('reply', () => {
      clearTimeout(timer);
      resolve(stream);
    });
    stream.once('reset', (status: number) => {
      clearTimeout(timer);
      reject(new Error(`stream reset with status ${status}`));
    });
  });
}

export function collect(stream: Duplex): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('close', () => resolve(Buffer.concat(chunks)));
  });
}

export interface SpdyExecOptions {
  protocols?: string[];
  stdin?: string | Buffer;
  /** Leave stdin open until the error stream has reported (tests that never send EOF). */
  keepStdinOpen?: boolean;
  stdout?: boolean;
  stderr?: boolean;
  tty?: boolean;
  resize?: { Width: number; Height: number }[];
  sendWindowUpdates?: boolean;
}

export interface SpdyExecResult {
  protocol: string;
  stdout: string;
  stderr: string;
  /** Raw bytes of the error stream: a metav1.Status JSON for v4, text for older protocols. */
  error: string;
}

/** Runs one exec/attach session against a URL from StreamingServer. */
export async function spdyExec(url: string, o: SpdyExecOptions = {}): Promise<SpdyExecResult> {
  const { conn, protocol } = await spdyUpgrade(url, o.protocols ?? ['v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'], {
    sendWindowUpdates: o.sendWindowUpdates,
  });
  try {
    const error = await openStream(conn, { streamtype: 'error' });
    const errorOut = collect(error);
    error.end();
    const stdin = o.stdin !== undefined ? await openStream(conn, { streamtype: 'stdin' }) : undefined;
    const stdout = o.stdout !== false ? await openStream(conn, { streamtype: 'stdout' }) : undefined;
    const stderr = o.stderr && !o.tty ? await openStream(conn, { streamtype: 'stderr' }) : undefined;
    const resize = o.tty && protocol !== 'channel.k8s.io' && protocol !== 'v2.channel.k8s.io' ? await openStream(conn, { streamtype: 'resize' }) : undefined;
    stdout?.end();
    stderr?.end();
    const outs = [stdout ? collect(stdout) : Promise.resolve(Buffer.alloc(0)), stderr ? collect(stderr) : Promise.resolve(Buffer.alloc(0))];
    for (const size of o.resize ?? []) resize?.write(JSON.stringify(size) + '\n');
    if (stdin) {
      stdin.write(o.stdin as string | Buffer);
      if (!o.keepStdinOpen) stdin.end();
    }
    const [out, err] = await Promise.all(outs);
    const errorBytes = await errorOut;
    stdin?.end();
    resize?.end();
    return { protocol, stdout: (out as Buffer).toString(), stderr: (err as Buffer).toString(), error: errorBytes.toString() };
  } finally {
    conn.destroy();
  }
}
