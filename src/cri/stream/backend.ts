/**
 * The streaming server's backend.
 *  - exec: an exec process through the task layer, its stdio FIFOs piped to the client streams;
 *    TTY resize → ResizePty; client stdin end → CloseIO; a client that goes away kills the
 *    process tree (nothing is left running that nobody can see).
 *  - attach, berth-shim containers: a session on the container's conmon attach socket (output
 *    packets to the client streams, client stdin to the container's stdin; the client ending
 *    stdin, or leaving, closes the container's stdin when it was created stdin_once). Ends when
 *    conmon closes the session (the container exited) or the client leaves.
 *  - attach, other shims: output follows the container's CRI log file (berthd writes it), input
 *    goes to the container's stdin FIFO when it was created with one (TaskState.stdin).
 *  - resize → ResizePty of the init process.
 *  - portForward: see port-forward.ts.
 * Streaming URLs carry no metadata namespace: containers are looked up in the CRI's (k8s.io).
 */
import { constants as C, openSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import net from 'node:net';
import type { Writable } from 'node:stream';
import type { StreamingBackend, StreamIO } from '../../streaming/index.js';
import { CRI_NAMESPACE } from '../server/instrument.js';
import type { RuntimeContext } from '../server/runtime-context.js';
import { ExecProcess, runningContainer } from './exec.js';
import { forwardIntoSandbox } from './port-forward.js';
import { shimWritesCriLog } from '../container/io.js';
import { AttachSession } from '../../conmon/attach.js';
import { attachSocketPath } from '../../shim-protocol.js';
import { join } from 'node:path';
import { parseCriLog } from '../../cri-log.js';

async function pumpResize(io: StreamIO, fn: (w: number, h: number) => Promise<void>): Promise<void> {
  for await (const s of io.resize) await fn(s.width, s.height).catch(() => undefined);
}

export async function execStream(ctx: RuntimeContext, containerId: string, cmd: string[], io: StreamIO): Promise<{ exitCode: number }> {
  const ns = CRI_NAMESPACE;
  const c = runningContainer(ctx, ns, containerId);
  const p = await ExecProcess.start(ctx, { ns, containerId: c.id, cmd, tty: io.tty, stdin: !!io.stdin, stdout: !!io.stdout, stderr: !!io.stderr });
  const onAbort = (): void => void p.killTree().catch(() => undefined);
  try {
    if (io.stdout && p.io.stdout) p.io.stdout.pipe(io.stdout, { end: false });
    else p.io.stdout?.resume();
    if (io.stderr && p.io.stderr) p.io.stderr.pipe(io.stderr, { end: false });
    else p.io.stderr?.resume();
    if (io.stdin && p.io.stdin) {
      const fifo = p.io.stdin;
      io.stdin.pipe(fifo, { end: false });
      io.stdin.once('end', () => {
        // Flush what was written, then tell the shim: the process sees EOF.
        fifo.write('', () => void p.closeStdin().catch(() => undefined));
      });
    }
    if (io.tty) void pumpResize(io, (w, h) => p.resize(w, h));
    io.signal.addEventListener('abort', onAbort, { once: true });
    return { exitCode: await p.wait() };
  } finally {
    io.signal.removeEventListener('abort', onAbort);
    io.stdin?.unpipe();
    await p.cleanup();
  }
}

/** Where a log file ends now (size and inode; zeros when it does not exist yet). */
async function logEnd(path: string): Promise<{ offset: number; ino: number }> {
  return stat(path).then(
    (s) => ({ offset: s.size, ino: s.ino }),
    () => ({ offset: 0, ino: 0 }),
  );
}

/** Follow a file from `from`, calling `onData`, until `stop` resolves (then a last read). */
async function followFile(path: string, onData: (b: Buffer) => void, stop: Promise<void>, from: { offset: number; ino: number }): Promise<void> {
  let { offset, ino } = from;
  let stopped = false;
  void stop.then(() => (stopped = true));
  const readMore = async (): Promise<void> => {
    const st = await stat(path).catch(() => undefined);
    if (!st) return;
    if (st.ino !== ino || st.size < offset) {
      // Rotated or truncated by the kubelet: start over on the new file.
      ino = st.ino;
      offset = 0;
    }
    if (st.size <= offset) return;
    const fh = await open(path, 'r');
    try {
      const buf = Buffer.alloc(Math.min(st.size - offset, 1 << 20));
      const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
      offset += bytesRead;
      if (bytesRead) onData(buf.subarray(0, bytesRead));
    } finally {
      await fh.close();
    }
  };
  while (!stopped) {
    await readMore();
    await Promise.race([stop, new Promise((r) => setTimeout(r, 50))]);
  }
  // The exit can arrive while berthd's log forwarder still writes the last output: two more
  // passes catch what it wrote by then.
  await readMore();
  await readMore();
}

const ATTACH_QUEUE_MAX = 1 << 20;

/** Attach through conmon's attach socket (berth-shim containers). */
async function attachConmon(ctx: RuntimeContext, ns: string, id: string, io: StreamIO): Promise<void> {
  const session = await AttachSession.connect(attachSocketPath(join(ctx.settings.state, 's'), ns, id));
  const sink = (s: 'stdout' | 'stderr'): Writable | undefined => (io.tty ? io.stdout : s === 'stdout' ? io.stdout : io.stderr);
  // A slow client must not make berthd buffer a container's output without end, nor stall
  // the container's conmon (its log would stall too): past 1 MiB queued, output is dropped.
  let dropped = 0;
  session.onOutput((s, b) => {
    const w = sink(s);
    if (!w || w.destroyed) return;
    if (w.writableLength > ATTACH_QUEUE_MAX) {
      if (dropped++ === 0) ctx.log.warn('attach client too slow: dropping output', { container: id });
      return;
    }
    w.write(b);
  });
  if (io.tty) void pumpResize(io, (w, h) => ctx.tasks.resizePty(ns, id, w, h));
  const stdin = io.stdin;
  if (stdin) {
    stdin.on('data', (d: Buffer) => {
      stdin.pause();
      session.write(d).finally(() => stdin.resume());
    });
    stdin.once('end', () => void session.closeStdin());
  }
  const left = new Promise<void>((r) => (io.signal.aborted ? r() : io.signal.addEventListener('abort', () => r(), { once: true })));
  try {
    await Promise.race([session.closed, left]);
  } finally {
    stdin?.removeAllListeners('data');
    session.destroy();
  }
}

export async function attachStream(ctx: RuntimeContext, containerId: string, io: StreamIO): Promise<void> {
  const ns = CRI_NAMESPACE;
  const c = runningContainer(ctx, ns, containerId);
  if (shimWritesCriLog(ctx, (c.extra.runtimeHandler as string | undefined) ?? ctx.settings.defaultRuntime)) return attachConmon(ctx, ns, c.id, io);
  const state = await ctx.tasks.state(ns, c.id);
  // Fix the log position before any stdin reaches the container: output it writes in answer
  // must not land before the point the follower starts from.
  const from = c.logPath ? await logEnd(c.logPath) : { offset: 0, ino: 0 };
  let stdinFifo: net.Socket | undefined;
  if (io.stdin && state.stdin && !state.stdin.includes('://')) {
    stdinFifo = new net.Socket({ fd: openSync(state.stdin, C.O_RDWR | C.O_NONBLOCK), readable: false, writable: true });
    stdinFifo.on('error', () => undefined);
    io.stdin.pipe(stdinFifo, { end: false });
  } else {
    io.stdin?.resume();
  }
  if (io.tty) void pumpResize(io, (w, h) => ctx.tasks.resizePty(ns, c.id, w, h));
  const exited = ctx.tasks.wait(ns, c.id).then(
    () => undefined,
    () => undefined,
  );
  const left = new Promise<void>((r) => (io.signal.aborted ? r() : io.signal.addEventListener('abort', () => r(), { once: true })));
  let tail = Buffer.alloc(0);
  const sink = (s: 'stdout' | 'stderr'): Writable | undefined => (io.tty ? io.stdout : s === 'stdout' ? io.stdout : io.stderr);
  try {
    if (c.logPath && (io.stdout || io.stderr)) {
      await followFile(
        c.logPath,
        (b) => {
          const { records, rest } = parseCriLog(Buffer.concat([tail, b]));
          tail = Buffer.from(rest);
          for (const r of records) {
            const w = sink(r.stream);
            if (!w || w.destroyed) continue;
            w.write(r.content);
            if (!r.partial) w.write('\n');
          }
        },
        Promise.race([exited, left]),
        from,
      );
    } else {
      await Promise.race([exited, left]);
    }
  } finally {
    io.stdin?.unpipe();
    stdinFifo?.destroy();
  }
}

export function createStreamingBackend(getCtx: () => RuntimeContext): StreamingBackend {
  return {
    exec: (containerId, cmd, io) => execStream(getCtx(), containerId, cmd, io),
    attach: (containerId, io) => attachStream(getCtx(), containerId, io),
    portForward: (podSandboxId, port, stream) => forwardIntoSandbox(getCtx(), CRI_NAMESPACE, podSandboxId, port, stream),
  };
}
