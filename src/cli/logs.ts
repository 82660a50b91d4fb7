/** `berth logs [-f] [--tail N] [--timestamps] CONTAINER`: reads the container's CRI log file. */
import { ContainerState } from '../api/cri/runtime/v1/api_pb.js';
import { UsageError, type Verb } from './common.js';
import { CriLogAssembler, type LogLine } from '../cri-log.js';
import { followLog, formatLogLine, lastLines, readLog } from './crilog.js';
import { intFlag } from './flags.js';
import { resolveContainerId } from './resolve.js';
import { verbArgs } from './verb-args.js';

export const logs: Verb = {
  summary: "Print (and follow) a container's logs",
  usage: [
    'berth logs [-f] [--tail N] [-t|--timestamps] CONTAINER',
    '',
    '  -f, --follow       keep printing new lines (across log rotation) until the container exits',
    '      --tail N       only the last N lines',
    '  -t, --timestamps   prefix each line with its RFC3339Nano time',
    '',
    "stdout lines go to stdout, stderr lines to stderr. Reads the file named by the container's",
    'log path, so run it on the node, as root.',
  ].join('\n'),
  rawArgs: true,
  async run(args, ctx) {
    const { flags, positionals } = verbArgs(
      args,
      { follow: { type: 'boolean', short: 'f' }, tail: { type: 'string' }, timestamps: { type: 'boolean', short: 't' } },
      ctx,
    );
    if (positionals.length !== 1) throw new UsageError('logs takes exactly one CONTAINER');
    const tail = flags.tail === undefined || flags.tail === '-1' ? undefined : intFlag(flags.tail, '--tail', 0);
    const id = await resolveContainerId(ctx, positionals[0]!);
    const rt = ctx.cri().runtime;
    const st = (await rt.containerStatus({ containerId: id })).status;
    if (!st?.logPath) throw new Error(`container ${id.slice(0, 13)} has no log path`);
    const print = (l: LogLine): void => {
      const s = formatLogLine(l, flags.timestamps) + '\n';
      (l.stream === 'stderr' ? process.stderr : process.stdout).write(s);
    };
    let read: ReturnType<typeof readLog>;
    try {
      read = readLog(st.logPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !flags.follow)
        throw new Error(`cannot read log file ${st.logPath}: ${(err as Error).message}`, { cause: err });
      read = { lines: [], size: 0, asm: new CriLogAssembler() };
    }
    if (!flags.follow) {
      // A last partial line (output that ended without a newline) counts as a line for --tail.
      for (const l of lastLines([...read.lines, ...read.asm.flush()], tail)) print(l);
      return 0;
    }
    for (const l of lastLines(read.lines, tail)) print(l);
    const ac = new AbortController();
    const stopOnSignal = () => ac.abort();
    process.once('SIGINT', stopOnSignal);
    let lastCheck = 0;
    try {
      await followLog(
        st.logPath,
        read.size,
        {
          onLine: print,
          signal: ac.signal,
          // Stop once the container has exited (or is gone) and the file has no more data.
          shouldStop: async () => {
            if (Date.now() - lastCheck < 1000) return false;
            lastCheck = Date.now();
            try {
              const s = (await rt.containerStatus({ containerId: id })).status;
              return !s || s.state === ContainerState.CONTAINER_EXITED || s.state === ContainerState.CONTAINER_UNKNOWN;
            } catch {
              return true;
            }
          },
        },
        read.asm,
      );
    } finally {
      process.off('SIGINT', stopOnSignal);
    }
    return 0;
  },
};
