/**
 * PortForward RPC and its data path.
 *
 * The data path needs a TCP connection made from inside the pod's network namespace. Node
 * cannot switch the namespace of one thread safely, so berthd runs a tiny helper:
 * `nsenter --net=<pod netns> <node> -e <bridge>` — a Node one-liner that connects to
 * 127.0.0.1:<port> and copies stdin → socket and socket → stdout (half-close aware). A failed
 * connect exits 1 with the reason on stderr, which becomes the error. No socat dependency.
 */
import { spawn } from 'node:child_process';
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
  const args = sb.netnsPath ? [`--net=${sb.netnsPath}`] : sb.pid ? ['-t', String(sb.pid), '-n'] : [];
  if (args.length === 0) throw errors.failedPrecondition('sandbox.no_netns', `pod sandbox ${sb.id} has no network namespace`);
  const child = spawn('nsenter', [...args, process.execPath, '-e', BRIDGE_SCRIPT, String(port)], { stdio: ['pipe', 'pipe', 'pipe'] });
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
    throw errors.unavailable('portforward.connect', `port-forward to port ${port} in pod sandbox ${sb.id}: ${stderr.trim() || `helper exited with ${code}`}`);
  }
}

/** PortForward RPC: the sandbox must exist and be ready; returns a streaming URL. */
export const portForward = (ctx: RuntimeContext): NonNullable<RuntimeHandlers['portForward']> => async (req, call) => {
  const sb = readySandbox(ctx, call.namespace, req.podSandboxId);
  return { url: ctx.streaming.getPortForward({ podSandboxId: sb.id, port: req.port }) };
};
