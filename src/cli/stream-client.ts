/**
 * The client side of Kubernetes' WebSocket channel protocols, as `berth exec -it`, `attach`
 * and `port-forward` use them against the URL the CRI returns.
 *
 * remotecommand (v5.channel.k8s.io, else v4): binary messages, first byte = channel:
 * 0 stdin, 1 stdout, 2 stderr, 3 error (a JSON metav1.Status that carries the exit code),
 * 4 resize (JSON {"Width","Height"}), 255 close (v5: payload = the channel we closed).
 * portforward (v4.channel.k8s.io): channel 0 data, 1 error for the one port we ask for; the
 * first message on each is the port number (uint16 LE), not data.
 */
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import WebSocket from 'ws';

export const RC_V5 = 'v5.channel.k8s.io';
export const RC_V4 = 'v4.channel.k8s.io';
const CH = { STDIN: 0, STDOUT: 1, STDERR: 2, ERROR: 3, RESIZE: 4, CLOSE: 255 } as const;

export class RemoteCommandError extends Error {}

interface StatusDoc {
  status?: string;
  message?: string;
  reason?: string;
  details?: { causes?: { reason?: string; message?: string }[] };
}

/** Exit code from the error channel's status; throws for failures that are not an exit code. */
export function exitCodeFromStatus(payload: Buffer | undefined): number {
  if (!payload || payload.length === 0) return 0;
  let doc: StatusDoc;
  try {
    doc = JSON.parse(payload.toString()) as StatusDoc;
  } catch {
    throw new RemoteCommandError(payload.toString());
  }
  if (doc.status === 'Success') return 0;
  if (doc.reason === 'NonZeroExitCode') {
    const cause = doc.details?.causes?.find((c) => c.reason === 'ExitCode');
    const n = Number(cause?.message);
    if (Number.isInteger(n)) return n;
  }
  throw new RemoteCommandError(doc.message ?? 'remote command failed');
}

function frame(channel: number, data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([channel]), data]);
}

function toBuffer(raw: WebSocket.RawData): Buffer {
  return Array.isArray(raw) ? Buffer.concat(raw) : Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
}

/**
 * Connects; `onMessage` is registered before the handshake completes because ws may deliver
 * frames that arrived with the upgrade response synchronously right after 'open'.
 */
function open(url: string, protocols: string[], onMessage: (buf: Buffer) => void): Promise<WebSocket> {
  const ws = new WebSocket(url.replace(/^http/, 'ws'), protocols);
  ws.on('message', (raw: WebSocket.RawData) => onMessage(toBuffer(raw)));
  return new Promise((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => reject(new RemoteCommandError(`streaming server answered HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString().trim()}`)));
    });
    ws.once('error', reject);
    ws.once('open', () => {
      ws.off('error', reject);
      resolve(ws);
    });
  });
}

export interface TerminalSize {
  width: number;
  height: number;
}

export interface RemoteCommandIO {
  stdin?: Readable;
  stdout: Writable;
  stderr?: Writable;
  /** Initial terminal size, and a way to learn about later changes (SIGWINCH). */
  size?: TerminalSize;
  onResize?: (send: (s: TerminalSize) => void) => () => void;
}

/** Runs an exec/attach session to the end; resolves with the remote command's exit code. */
export async function runRemoteCommand(url: string, io: RemoteCommandIO): Promise<number> {
  let status: Buffer | undefined;
  const ws = await open(url, [RC_V5, RC_V4], (buf) => {
    if (buf.length === 0) return;
    const data = buf.subarray(1);
    if (buf[0] === CH.STDOUT) io.stdout.write(data);
    else if (buf[0] === CH.STDERR) (io.stderr ?? io.stdout).write(data);
    else if (buf[0] === CH.ERROR) status = Buffer.concat([status ?? Buffer.alloc(0), data]);
  });
  const v5 = ws.protocol === RC_V5;
  const sendResize = (s: TerminalSize): void => {
    if (ws.readyState === ws.OPEN) ws.send(frame(CH.RESIZE, Buffer.from(JSON.stringify({ Width: s.width, Height: s.height }))));
  };
  if (io.size) sendResize(io.size);
  const stopResize = io.onResize?.(sendResize);

  const onData = (chunk: Buffer | string): void => {
    if (ws.readyState === ws.OPEN) ws.send(frame(CH.STDIN, Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk)));
  };
  const onEnd = (): void => {
    // Only v5 can tell the server that stdin is done; v4 keeps it open until the session ends.
    if (v5 && ws.readyState === ws.OPEN) ws.send(frame(CH.CLOSE, Buffer.from([CH.STDIN])));
  };
  if (io.stdin) {
    io.stdin.on('data', onData);
    io.stdin.once('end', onEnd);
  }
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('close', () => resolve());
      ws.once('error', reject);
    });
  } finally {
    stopResize?.();
    if (io.stdin) {
      io.stdin.off('data', onData);
      io.stdin.off('end', onEnd);
    }
  }
  return exitCodeFromStatus(status);
}

/**
 * Bridges one local TCP connection (accepted with allowHalfOpen) to one pod port over a
 * port-forward URL. Resolves when
 * either side is done; an error reported by the server is passed to `onError`.
 */
export async function forwardConnection(url: string, socket: Socket, onError: (msg: string) => void): Promise<void> {
  // The first message on each channel is the port number; data starts after it.
  const seen = new Set<number>();
  let ws: WebSocket;
  try {
    ws = await open(url, [RC_V4], (buf) => {
      if (buf.length === 0) return;
      const ch = buf[0] as number;
      if (!seen.has(ch)) {
        seen.add(ch);
        return;
      }
      if (ch === 0) socket.write(buf.subarray(1));
      else if (ch === 1 && buf.length > 1) onError(buf.subarray(1).toString());
    });
  } catch (err) {
    socket.destroy();
    throw err;
  }
  socket.on('data', (chunk: Buffer) => {
    if (ws.readyState === ws.OPEN) ws.send(frame(0, chunk));
  });
  await new Promise<void>((resolve) => {
    let idle: NodeJS.Timeout | undefined;
    const done = (): void => {
      if (idle) clearTimeout(idle);
      socket.end();
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close();
      resolve();
    };
    // The channel protocol cannot half-close. When the local client half-closes (sent its
    // request, waits for the answer) keep the session until the pod side goes quiet.
    socket.once('end', () => {
      const arm = (): void => {
        if (idle) clearTimeout(idle);
        idle = setTimeout(done, HALF_CLOSE_IDLE_MS);
      };
      arm();
      ws.on('message', arm);
    });
    socket.once('error', done);
    ws.once('close', done);
    ws.once('error', done);
  });
}

/** How long a half-closed local connection waits for more data from the pod. */
export const HALF_CLOSE_IDLE_MS = 1000;
