/**
 * Kubernetes' WebSocket channel protocols (k8s.io/apimachinery wsstream).
 *
 * Every message starts with a channel number. Binary protocols (`channel.k8s.io`,
 * `v4.channel.k8s.io`, `v5.channel.k8s.io`) carry it as the first byte; base64 protocols
 * (`base64.channel.k8s.io`, `v4.base64.channel.k8s.io`) send text messages whose first
 * character is the ASCII digit of the channel followed by the base64 payload.
 *
 * remotecommand channels: 0 stdin, 1 stdout, 2 stderr, 3 error (status), 4 resize; v5 adds
 * channel 255 whose one-byte payload names a channel the client closes (stdin EOF).
 * port-forward: channel 2i carries data and 2i+1 errors for the i-th requested port; the server
 * first sends each of them the port as a little-endian uint16.
 */
import { Duplex, PassThrough, Writable } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Logger } from '../log.js';
import { RC_V1, RC_V4, RC_V5 } from './protocol.js';
import { ResizeQueue } from './resize.js';
import { finishWritable, runRemoteCommand, type RemoteCommandRequest } from './session.js';
import { HOLD_PROBE_MS } from './spdy/connection.js';
import { encodeStatus } from './status.js';
import type { StreamingBackend } from './types.js';

export const WS_BASE64_V1 = 'base64.channel.k8s.io';
export const WS_BASE64_V4 = 'v4.base64.channel.k8s.io';
/** Offered in this order of preference when the client lists several. */
export const WS_REMOTECOMMAND_PROTOCOLS = [RC_V5, RC_V4, WS_BASE64_V4, RC_V1, WS_BASE64_V1];
export const WS_PORTFORWARD_PROTOCOLS = [RC_V4, WS_BASE64_V4];

export const Channel = { STDIN: 0, STDOUT: 1, STDERR: 2, ERROR: 3, RESIZE: 4, CLOSE: 255 } as const;

export function isBase64Protocol(protocol: string): boolean {
  return protocol.includes('base64.');
}

export function encodeChannelMessage(channel: number, data: Buffer, base64: boolean): Buffer | string {
  if (base64) return String.fromCharCode(0x30 + channel) + data.toString('base64');
  const out = Buffer.allocUnsafe(1 + data.length);
  out[0] = channel;
  data.copy(out, 1);
  return out;
}

export function decodeChannelMessage(message: Buffer, base64: boolean): { channel: number; data: Buffer } | undefined {
  if (message.length === 0) return undefined;
  if (base64) {
    const channel = (message[0] as number) - 0x30;
    if (channel < 0 || channel > 9) return undefined;
    return { channel, data: Buffer.from(message.subarray(1).toString('latin1'), 'base64') };
  }
  return { channel: message[0] as number, data: message.subarray(1) };
}

/** Message payload from ws as one Buffer (ws hands out Buffer, ArrayBuffer or Buffer[]). */
function toBuffer(raw: Buffer | ArrayBuffer | Buffer[]): Buffer {
  if (Array.isArray(raw)) return Buffer.concat(raw);
  return Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
}

/** A Writable whose chunks become messages on one channel; write callbacks wait for the socket. */
class ChannelWriter extends Writable {
  constructor(
    private readonly ws: WebSocket,
    private readonly channel: number,
    private readonly base64: boolean,
  ) {
    super();
    // A late write from the backend after the client left must not crash the daemon.
    this.on('error', () => {});
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.ws.readyState !== this.ws.OPEN) {
      cb();
      return;
    }
    this.ws.send(encodeChannelMessage(this.channel, chunk, this.base64), () => cb());
  }
}

function sendOn(ws: WebSocket, channel: number, data: Buffer, base64: boolean): Promise<void> {
  if (ws.readyState !== ws.OPEN) return Promise.resolve();
  return new Promise((resolve) => ws.send(encodeChannelMessage(channel, data, base64), () => resolve()));
}

/**
 * Inbound backpressure: while any of the session's readers has not taken what it was given,
 * the WebSocket's socket is not read (TCP then slows the client). Each holder releases itself
 * when its reader drains; messages never pile up in memory behind a process that reads slowly.
 */
class InboundGate {
  private readonly held = new Set<object>();
  private probe: NodeJS.Timeout | undefined;

  constructor(private readonly ws: WebSocket) {
    ws.once('close', () => clearInterval(this.probe));
  }

  hold(who: object): void {
    this.held.add(who);
    if (!this.ws.isPaused) this.ws.pause();
    // A socket that is not read would not show that the client went away: a ping to a client
    // that is gone makes the kernel answer RST, the next write fails and the session closes.
    if (!this.probe) {
      this.probe = setInterval(() => {
        if (this.ws.readyState === this.ws.OPEN) this.ws.ping();
      }, HOLD_PROBE_MS);
      this.probe.unref();
    }
  }

  release(who: object): void {
    if (!this.held.delete(who) || this.held.size > 0) return;
    clearInterval(this.probe);
    this.probe = undefined;
    if (this.ws.isPaused && this.ws.readyState === this.ws.OPEN) this.ws.resume();
  }
}

function closeSocket(ws: WebSocket): void {
  if (ws.readyState !== ws.OPEN) return;
  ws.close(1000);
  // Do not wait forever for the peer's close frame.
  setTimeout(() => ws.terminate(), 2000).unref();
}

export interface WsRemoteCommandOptions {
  ws: WebSocket;
  protocol: string;
  request: RemoteCommandRequest;
  backend: StreamingBackend;
  log: Logger;
}

export async function serveRemoteCommandWs(o: WsRemoteCommandOptions): Promise<void> {
  const { ws, protocol, request, log } = o;
  const want = request.request;
  const base64 = isBase64Protocol(protocol);
  const stdin = want.stdin ? new PassThrough() : undefined;
  const stdout = want.stdout ? new ChannelWriter(ws, Channel.STDOUT, base64) : undefined;
  const stderr = want.stderr && !want.tty ? new ChannelWriter(ws, Channel.STDERR, base64) : undefined;
  const resize = new ResizeQueue();
  if (!want.tty) resize.end();
  const abort = new AbortController();
  const gate = new InboundGate(ws);
  stdin?.on('drain', () => gate.release(stdin));

  ws.on('message', (raw: Buffer | ArrayBuffer | Buffer[]) => {
    const msg = decodeChannelMessage(toBuffer(raw), base64);
    if (!msg) return;
    if (msg.channel === Channel.STDIN) {
      // A process that does not read its stdin must not make berthd buffer the client's input.
      if (stdin && !stdin.writableEnded && !stdin.write(msg.data)) gate.hold(stdin);
    } else if (msg.channel === Channel.RESIZE) {
      if (want.tty) resize.write(msg.data);
    } else if (msg.channel === Channel.CLOSE && protocol === RC_V5) {
      if (msg.data[0] === Channel.STDIN) stdin?.end();
    } else {
      log.debug('websocket message for a channel the client may not write', { channel: msg.channel });
    }
  });
  ws.on('close', () => {
    stdin?.end();
    resize.end();
    abort.abort();
  });
  ws.on('error', (err: Error) => log.debug('websocket error', { err: err.message }));

  // An empty message on the lowest writable channel tells the client the session is ready.
  const first = stdout ? Channel.STDOUT : stderr ? Channel.STDERR : Channel.ERROR;
  await sendOn(ws, first, Buffer.alloc(0), base64);

  const status = await runRemoteCommand(o.backend, request, { stdin, stdout, stderr, tty: want.tty, resize, signal: abort.signal }, log);
  resize.end();
  await Promise.all([finishWritable(stdout), finishWritable(stderr)]);
  const bytes = encodeStatus(protocol, status);
  if (bytes.length > 0) await sendOn(ws, Channel.ERROR, bytes, base64);
  closeSocket(ws);
}

/** One forwarded port's data channel as a Duplex for the backend. */
class PortChannel extends Duplex {
  constructor(
    private readonly ws: WebSocket,
    private readonly channel: number,
    private readonly base64: boolean,
    private readonly gate: InboundGate,
  ) {
    super({ allowHalfOpen: true });
    this.on('error', () => {});
  }

  /** Client data for the port; holds the socket when the backend has not read what it has. */
  deliver(data: Buffer): void {
    if (!this.push(data)) this.gate.hold(this);
  }

  override _read(): void {
    this.gate.release(this);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.ws.readyState !== this.ws.OPEN) {
      cb();
      return;
    }
    this.ws.send(encodeChannelMessage(this.channel, chunk, this.base64), () => cb());
  }

  // The channel protocol cannot half-close; the session ends when every port is done.
  override _final(cb: (err?: Error | null) => void): void {
    cb();
  }
}

export interface WsPortForwardOptions {
  ws: WebSocket;
  protocol: string;
  podSandboxId: string;
  ports: number[];
  backend: StreamingBackend;
  log: Logger;
}

export async function servePortForwardWs(o: WsPortForwardOptions): Promise<void> {
  const { ws, ports, log } = o;
  const base64 = isBase64Protocol(o.protocol);
  const gate = new InboundGate(ws);
  const channels = ports.map((_, i) => new PortChannel(ws, 2 * i, base64, gate));

  ws.on('message', (raw: Buffer | ArrayBuffer | Buffer[]) => {
    const msg = decodeChannelMessage(toBuffer(raw), base64);
    if (!msg || msg.channel % 2 !== 0) return;
    channels[msg.channel / 2]?.deliver(msg.data);
  });
  ws.on('close', () => {
    for (const c of channels) c.push(null);
  });
  ws.on('error', (err: Error) => log.debug('websocket error', { err: err.message }));

  for (const [i, port] of ports.entries()) {
    const prefix = Buffer.alloc(2);
    prefix.writeUInt16LE(port, 0);
    await sendOn(ws, 2 * i, prefix, base64);
    await sendOn(ws, 2 * i + 1, prefix, base64);
  }

  await Promise.all(
    ports.map(async (port, i) => {
      const channel = channels[i] as PortChannel;
      try {
        await o.backend.portForward(o.podSandboxId, port, channel);
      } catch (err) {
        const msg = `error forwarding port ${port} to pod ${o.podSandboxId}: ${err instanceof Error ? err.message : String(err)}`;
        log.warn('port-forward failed', { port, err: msg });
        await sendOn(ws, 2 * i + 1, Buffer.from(msg), base64);
      }
    }),
  );
  closeSocket(ws);
}
