/**
 * PortForward RPC and its data path.
 *
 * The data path needs a TCP connection made from inside the pod's network namespace. The
 * socket is made there by a worker thread that setns()s (src/network/netns-dial.ts) and is
 * connected and piped on berthd's main thread: no process per connection. 127.0.0.1 first,
 * then ::1 when nothing listens on IPv4 (an IPv6-only server). Where that thread cannot run
 * (koffi cannot load), berthd falls back to a tiny helper per connection:
 * `nsenter --net=<pod netns> <node> -e <bridge>`, a Node one-liner that connects to
 * 127.0.0.1:<port> and copies stdin → socket and socket → stdout (half-close aware).
 */
import { spawn } from 'node:child_process';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { errors } from '../../errors.js';
import { findSandbox, type RuntimeContext } from '../server/runtime-context.js';
import type { RuntimeHandlers } from '../server/server.js';

/** The helper's program (CommonJS under `node -e`; argv[1] is the port). */
export const BRIDGE_SCRIPT = [
  "const net = require('net');",
  "const s = net.connect({ host: '127.0.0.1', port: Number(process.argv[1]), allowHalfOpen: true });",
  "s.on('error', (e) => { process.stderr.write(e.message); process.exit(1); });",
  "s.once('connect', () => { process.stdin.pipe(s); s.pipe(process.stdout); });",
  "s.once('close', () => process.exit(0));",
  "s.once('end', () => { if (process.stdin.readableEnded) s.destroy(); });",
].join('\n');

function readySandbox(ctx: RuntimeContext, ns: string, id: string) {
  const sb = findSandbox(ctx, ns, id);
  if (sb.state !== 'ready') throw errors.failedPrecondition('sandbox.not_ready', `pod sandbox ${sb.id} is not ready`);
  return sb;
}

/** Pipe `stream` to 127.0.0.1:port inside the pod's netns; resolves when both directions are done. */
export async function forwardIntoSandbox(ctx: RuntimeContext, ns: string, sandboxId: string, port: number, stream: Duplex): Promise<void> {
  const sb = readySandbox(ctx, ns, sandboxId);
  const nsPath = sb.netnsPath || (sb.pid ? `/proc/${sb.pid}/ns/net` : '');
  if (!nsPath) throw errors.failedPrecondition('sandbox.no_netns', `pod sandbox ${sb.id} has no network namespace`);
  // One per context: its worker thread serves every pod.
  const dialer = ctx.netnsDialer;
  if (!dialer.available) return forwardWithHelper(sb.id, nsPath, port, stream);
  let sock: net.Socket;
  try {
    sock = await dialer.connect(nsPath, '127.0.0.1', port).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ECONNREFUSED') throw err;
      return dialer.connect(nsPath, '::1', port).catch(() => Promise.reject(err));
    });
  } catch (err) {
    if (!dialer.available) return forwardWithHelper(sb.id, nsPath, port, stream);
    throw errors.unavailable('portforward.connect', `port-forward to port ${port} in pod sandbox ${sb.id}: ${(err as Error).message}`);
  }
  await pipeBoth(sock, stream);
}

/** Copies both ways (half-close aware) until the pod's socket closes or the client goes away. */
function pipeBoth(sock: net.Socket, stream: Duplex): Promise<void> {
  return new Promise((resolve) => {
    sock.on('error', () => undefined);
    stream.pipe(sock);
    sock.pipe(stream);
    const gone = (): void => void sock.destroy();
    stream.once('close', gone);
    stream.once('error', gone);
    // The client closed its side and the pod its own: nothing more can flow.
    sock.once('end', () => {
      if (stream.readableEnded) sock.destroy();
    });
    sock.once('close', () => {
      stream.off('close', gone);
      stream.unpipe(sock);
      resolve();
    });
  });
}

/** The fallback: one nsenter + node helper per connection (see the file comment). */
async function forwardWithHelper(sandboxId: string, nsPath: string, port: number, stream: Duplex): Promise<void> {
  const child = spawn('nsenter', [`--net=${nsPath}`, process.execPath, '-e', BRIDGE_SCRIPT, String(port)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-2048)));
  child.stdin.on('error', () => undefined);
  stream.pipe(child.stdin);
  child.stdout.pipe(stream);
  const gone = (): void => void child.kill('SIGKILL');
  stream.once('close', gone);
  stream.once('error', gone);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c) => resolve(c));
  }).finally(() => {
    stream.off('close', gone);
    stream.unpipe(child.stdin);
  });
  if (code !== 0 && !stream.destroyed) {
    throw errors.unavailable(
      'portforward.connect',
      `port-forward to port ${port} in pod sandbox ${sandboxId}: ${stderr.trim() || `helper exited with ${code}`}`,
    );
  }
}

/** PortForward RPC: the sandbox must exist and be ready; returns a streaming URL. */
export const portForward =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['portForward']> =>
  async (req, call) => {
    const sb = readySandbox(ctx, call.namespace, req.podSandboxId);
    return { url: ctx.streaming.getPortForward({ podSandboxId: sb.id, port: req.port }) };
  };
