/**
 * berth-shim / containerd-shim-berth-v1 entry point. Keeps its static imports to the flag
 * parser: `start` must not pay for ttrpc or koffi, and the long-lived `serve` process not for
 * node:crypto or what `start`/`delete` need; each action imports what it needs.
 */
import { parseFlags } from '../shim/flags.js';

async function main(): Promise<number> {
  const f = parseFlags(process.argv.slice(2));
  if (f.version) {
    process.stdout.write('berth-shim\n  Version: 0.1.0\n');
    return 0;
  }
  switch (f.action) {
    case 'start': {
      const { startShim } = await import('../shim/cli.js');
      const addr = await startShim(f, { execPath: process.execPath, execArgv: process.execArgv, script: process.argv[1] ?? '' });
      process.stdout.write(addr);
      return 0;
    }
    case 'delete': {
      const { deleteBundle } = await import('../shim/cli.js');
      const r = await deleteBundle(f);
      const { encode, timestamp } = await import('../ttrpc/pb.js');
      const { DeleteResponseS } = await import('../shim/task-api.js');
      process.stdout.write(encode(DeleteResponseS, { pid: r.pid, exitStatus: r.exitStatus, exitedAt: timestamp(r.exitedAt) }));
      return 0;
    }
    case 'serve': {
      if (!f.socket) throw new Error('serve: -socket is required');
      const { serve } = await import('../shim/server.js');
      const shim = await serve({
        namespace: f.namespace,
        socket: f.socket,
        address: f.address,
        publishBinary: f.publishBinary,
        ttrpcAddress: process.env.TTRPC_ADDRESS ?? '',
        debug: f.debug,
        runcRootBase: process.env.BERTH_RUNC_ROOT,
        readyFd: 3,
      });
      process.on('SIGTERM', () => void shim.stop());
      process.on('SIGINT', () => void shim.stop());
      // A closed stdout/stderr (log pipe gone) must not kill the shim and its containers.
      process.on('SIGPIPE', () => undefined);
      await shim.done;
      return 0;
    }
    default:
      process.stderr.write(`usage: berth-shim -namespace NS -id ID [-address ADDR] [-publish-binary BIN] [-bundle DIR] [-debug] start|delete\n`);
      return 2;
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`berth-shim: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
