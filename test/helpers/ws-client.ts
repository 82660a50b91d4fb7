/**
 * A Kubernetes WebSocket channel-protocol client for tests, on the `ws` package: one message per
 * write, first byte (or first character for base64 protocols) = channel.
 */
import WebSocket from 'ws';

export interface WsSession {
  ws: WebSocket;
  protocol: string;
  /** Data received per channel, in order. */
  channels: Map<number, Buffer[]>;
  /** Resolves with the close code once the server closes the socket. */
  closed: Promise<number>;
  send(channel: number, data: Buffer | string): void;
  text(channel: number): string;
}

export function wsConnect(url: string, protocols: string[]): Promise<WsSession> {
  const ws = new WebSocket(url.replace(/^http/, 'ws'), protocols);
  const channels = new Map<number, Buffer[]>();
  let base64 = false;
  const closed = new Promise<number>((resolve) => ws.once('close', (code: number) => resolve(code)));
  ws.on('message', (raw: WebSocket.RawData, isBinary: boolean) => {
    const buf = Array.isArray(raw) ? Buffer.concat(raw) : Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
    if (buf.length === 0) return;
    const channel = base64 ? (buf[0] as number) - 0x30 : (buf[0] as number);
    const data = base64 || !isBinary ? Buffer.from(buf.subarray(1).toString(), 'base64') : buf.subarray(1);
    const list = channels.get(channel) ?? [];
    list.push(data);
    channels.set(channel, list);
  });
  return new Promise((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}: ${Buffer.concat(chunks).toString().trim()}`), { status: res.statusCode })));
    });
    ws.once('error', reject);
    ws.once('open', () => {
      base64 = ws.protocol.includes('base64.');
      resolve({
        ws,
        protocol: ws.protocol,
        channels,
        closed,
        send(channel: number, data: Buffer | string) {
          const payload = Buffer.isBuffer(data) ? data : Buffer.from(data);
          if (base64) ws.send(String.fromCharCode(0x30 + channel) + payload.toString('base64'));
          else ws.send(Buffer.concat([Buffer.from([channel]), payload]));
        },
        text(channel: number) {
          return Buffer.concat(channels.get(channel) ?? []).toString();
        },
      });
    });
  });
}
