/** `berth attach [-i] [-t] CONTAINER`: attach to a running container's main process. */
import { ContainerState } from '../api/cri/runtime/v1/api_pb.js';
import { UsageError, type CliContext, type Verb } from './common.js';
import { interactive } from './exec.js';
import { resolveContainerId } from './resolve.js';
import { verbArgs } from './verb-args.js';

/**
 * The attach protocol reports how the session ended, not how the process did. When the session
 * ends because the container exited, answer with the container's exit code (as docker attach
 * does); a container still running after a short wait was detached from: keep `sessionCode`.
 */
export async function containerExitCode(ctx: CliContext, containerId: string, sessionCode: number): Promise<number> {
  const rt = ctx.cri().runtime;
  for (let i = 0; i < 20; i++) {
    const st = (await rt.containerStatus({ containerId })).status;
    if (st?.state === ContainerState.CONTAINER_EXITED) return st.exitCode;
    await new Promise((r) => setTimeout(r, 100));
  }
  return sessionCode;
}

export const attach: Verb = {
  summary: 'Attach to a running container',
  usage: [
    'berth attach [-i] [-t] CONTAINER',
    '',
    '  -i, --interactive   send standard input (the container must have been created with stdin)',
    '  -t, --tty           the container has a terminal: raw mode here, resize follows the window',
    '',
    "Exits with the container's exit code when the container ends the session.",
  ].join('\n'),
  rawArgs: true,
  async run(args, ctx) {
    const { flags, positionals } = verbArgs(args, { interactive: { type: 'boolean', short: 'i' }, tty: { type: 'boolean', short: 't' } }, ctx);
    if (positionals.length !== 1) throw new UsageError('attach takes exactly one CONTAINER');
    const containerId = await resolveContainerId(ctx, positionals[0]!);
    const { url } = await ctx.cri().runtime.attach({ containerId, stdin: flags.interactive, tty: flags.tty, stdout: true, stderr: !flags.tty });
    return containerExitCode(ctx, containerId, await interactive(ctx, url, { stdin: flags.interactive, tty: flags.tty }));
  },
};
