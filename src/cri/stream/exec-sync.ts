/**
 * ExecSync: run a command in a running container and return its output and exit code.
 * Each output is capped (the rest is read and discarded so the process never blocks on a full
 * pipe); a timeout kills the process tree and fails with DeadlineExceeded (as containerd
 * does). The timeout runs on ctx.clock, so a unit test advances it instead of waiting.
 */
import type { Readable } from 'node:stream';
import { errors } from '../../errors.js';
import type { RuntimeContext } from '../server/runtime-context.js';
import { ExecProcess, runningContainer } from './exec.js';
import { sleep } from '../server/ports.js';
import type { RuntimeHandlers } from '../server/server.js';

/** Per-stream cap of ExecSync output. */
export const EXEC_SYNC_OUTPUT_CAP = 16 * 1024 * 1024;

/** Collects a stream up to `cap` bytes, draining (and dropping) whatever comes after. */
export function cappedCollector(s: Readable | undefined, cap = EXEC_SYNC_OUTPUT_CAP): () => Buffer {
  const chunks: Buffer[] = [];
  let size = 0;
  s?.on('data', (b: Buffer) => {
    if (size >= cap) return;
    const take = b.subarray(0, cap - size);
    chunks.push(take);
    size += take.length;
  });
  return () => Buffer.concat(chunks, size);
}

export const execSync =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['execSync']> =>
  async (req, call) => {
    // Arguments first: a bad request is InvalidArgument whatever state the container is in.
    if (req.cmd.length === 0 || req.cmd[0] === '') throw errors.invalidArgument('exec.empty_cmd', 'cmd is required');
    if (req.timeout < 0n) throw errors.invalidArgument('exec.bad_timeout', `timeout must not be negative (got ${req.timeout})`);
    const c = runningContainer(ctx, call.namespace, req.containerId);
    const p = await ExecProcess.start(ctx, { ns: call.namespace, containerId: c.id, cmd: req.cmd, tty: false, stdin: false, stdout: true, stderr: true });
    const out = cappedCollector(p.io.stdout);
    const err = cappedCollector(p.io.stderr);
    const timer = req.timeout > 0n ? sleep(ctx.clock, Number(req.timeout) * 1000) : undefined;
    let onAbort: (() => void) | undefined;
    try {
      const stop = new Promise<'timeout' | 'cancelled'>((resolve) => {
        void timer?.done.then(() => resolve('timeout'));
        onAbort = () => resolve('cancelled');
        // Cancelled while the exec was starting: an abort listener added now would never run.
        if (call.signal.aborted) resolve('cancelled');
        else call.signal.addEventListener('abort', onAbort, { once: true });
      });
      const exited = p.wait();
      const r = await Promise.race([exited, stop]);
      if (typeof r === 'number') return { stdout: out(), stderr: err(), exitCode: r };
      await p.killTree();
      await exited.catch(() => undefined);
      if (r === 'cancelled') throw errors.canceled('exec.cancelled', `exec in container ${c.id} cancelled by the client`);
      throw errors.deadlineExceeded('exec.timeout', `command ${JSON.stringify(req.cmd)} in container ${c.id} timed out after ${req.timeout}s`);
    } finally {
      timer?.cancel();
      if (onAbort) call.signal.removeEventListener('abort', onAbort);
      await p.cleanup();
    }
  };
