/**
 * `berth exec [-i] [-t] CONTAINER CMD...`: without -i/-t a one-shot ExecSync; with them an Exec
 * session over the streaming server. Either way berth exits with the command's exit code.
 */
import { UsageError, type CliContext, type Verb } from './common.js';
import { intFlag } from './flags.js';
import { resolveContainerId } from './resolve.js';
import { runRemoteCommand } from './stream-client.js';
import { setupTerminal } from './tty.js';
import { verbArgs } from './verb-args.js';

export async function interactive(ctx: CliContext, url: string, o: { stdin: boolean; tty: boolean }): Promise<number> {
  const term = setupTerminal(o.tty);
  try {
    return await runRemoteCommand(url, {
      stdin: o.stdin ? process.stdin : undefined,
      stdout: process.stdout,
      stderr: o.tty ? undefined : process.stderr,
      size: term.size,
      onResize: term.onResize,
    });
  } finally {
    term.restore();
    // process.stdin keeps the event loop alive once read from.
    if (o.stdin) process.stdin.pause();
  }
}

export const exec: Verb = {
  summary: 'Run a command in a running container',
  usage: [
    'berth exec [-i] [-t] [--timeout SECONDS] CONTAINER CMD [ARGS...]',
    '',
    '  -i, --interactive   pass standard input to the command',
    '  -t, --tty           allocate a terminal (raw mode here, resize follows the window)',
    '      --timeout S     ExecSync timeout in seconds (without -i/-t; default none)',
    '',
    'Flags go before CONTAINER; everything after it is the command. Exits with its exit code.',
  ].join('\n'),
  rawArgs: true,
  async run(args, ctx) {
    const { flags, positionals } = verbArgs(
      args,
      { interactive: { type: 'boolean', short: 'i' }, tty: { type: 'boolean', short: 't' }, timeout: { type: 'string' } },
      ctx,
      { stopAtPositional: true },
    );
    if (positionals.length < 2) throw new UsageError('exec takes CONTAINER CMD [ARGS...]');
    const [ref, ...cmd] = positionals as [string, ...string[]];
    const containerId = await resolveContainerId(ctx, ref);
    const rt = ctx.cri().runtime;
    if (!flags.interactive && !flags.tty) {
      const timeout = BigInt(intFlag(flags.timeout, '--timeout', 0));
      const res = await rt.execSync({ containerId, cmd, timeout });
      if (res.stdout.length) process.stdout.write(res.stdout);
      if (res.stderr.length) process.stderr.write(res.stderr);
      return res.exitCode;
    }
    const { url } = await rt.exec({ containerId, cmd, tty: flags.tty, stdin: flags.interactive, stdout: true, stderr: !flags.tty });
    return interactive(ctx, url, { stdin: flags.interactive, tty: flags.tty });
  },
};
