/**
 * `berth port-forward POD [LOCAL:]REMOTE...`: listens on 127.0.0.1:LOCAL; every accepted
 * connection asks the CRI for a PortForward URL and is carried over its WebSocket.
 */
import net from 'node:net';
import { UsageError, type CliContext, type Verb } from './common.js';
import { resolvePodId } from './resolve.js';
import { forwardConnection } from './stream-client.js';
import { verbArgs } from './verb-args.js';

export interface PortPair {
  local: number;
  remote: number;
}

/** `LOCAL:REMOTE`, `REMOTE` (same local port) or `:REMOTE` (any free local port). */
export function parsePortPair(spec: string): PortPair {
  const m = /^(?:(\d*):)?(\d+)$/.exec(spec);
  if (!m) throw new UsageError(`port ${JSON.stringify(spec)}: expected [LOCAL:]REMOTE`);
  const remote = Number(m[2]);
  const local = m[1] === undefined ? remote : m[1] === '' ? 0 : Number(m[1]);
  if (remote < 1 || remote > 65535) throw new UsageError(`port ${JSON.stringify(spec)}: remote port out of range 1-65535`);
  if (local > 65535) throw new UsageError(`port ${JSON.stringify(spec)}: local port out of range 0-65535`);
  return { local, remote };
}

function listen(address: string, pair: PortPair, onConn: (s: net.Socket) => void): Promise<net.Server> {
  // Half-open: a client that sends its request and shuts down its side still gets the answer.
  const srv = net.createServer({ allowHalfOpen: true }, onConn);
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(pair.local, address, () => {
      srv.off('error', reject);
      resolve(srv);
    });
  });
}

async function serveOne(ctx: CliContext, podSandboxId: string, remote: number, socket: net.Socket): Promise<void> {
  socket.on('error', () => {});
  const { url } = await ctx.cri().runtime.portForward({ podSandboxId, port: [remote] });
  await forwardConnection(url, socket, (msg) => ctx.err(`port-forward ${remote}: ${msg}`));
}

export const portForward: Verb = {
  summary: 'Forward local ports to a pod',
  usage: [
    'berth port-forward [--address IP] POD [LOCAL:]REMOTE...',
    '',
    '  --address IP   local address to listen on (default 127.0.0.1)',
    '',
    'LOCAL empty (":80") picks a free port. Runs until interrupted.',
  ].join('\n'),
  rawArgs: true,
  async run(args, ctx) {
    const { flags, positionals } = verbArgs(args, { address: { type: 'string' } }, ctx);
    if (positionals.length < 2) throw new UsageError('port-forward takes POD and at least one [LOCAL:]REMOTE');
    const [ref, ...specs] = positionals as [string, ...string[]];
    const pairs = specs.map(parsePortPair);
    const address = flags.address ?? '127.0.0.1';
    const podSandboxId = await resolvePodId(ctx, ref);
    // Fail early on an unknown pod instead of at the first connection.
    await ctx.cri().runtime.podSandboxStatus({ podSandboxId });
    const servers: net.Server[] = [];
    try {
      for (const pair of pairs) {
        const srv = await listen(address, pair, (s) => {
          serveOne(ctx, podSandboxId, pair.remote, s).catch((err: unknown) => ctx.err(`port-forward ${pair.remote}: ${(err as Error).message}`));
        });
        servers.push(srv);
        const port = (srv.address() as net.AddressInfo).port;
        ctx.out(`Forwarding from ${address}:${port} -> ${pair.remote}`);
      }
    } catch (err) {
      for (const s of servers) s.close();
      throw new Error(`cannot listen on ${address}: ${(err as Error).message}`, { cause: err });
    }
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    for (const s of servers) s.close();
    return 0;
  },
};
