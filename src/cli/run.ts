/**
 * `berth run`: a pod and one container in it, started. Two forms:
 *   berth run CONTAINER.json POD.json                   (crictl run)
 *   berth run --name NAME [flags] IMAGE [CMD ARGS...]   (configs built from flags)
 * The image is pulled when absent. If any step after the pod fails, the pod is removed again
 * so a failed run leaves nothing behind.
 */
import type { ContainerConfig, PodSandboxConfig } from '../api/cri/runtime/v1/api_pb.js';
import { UsageError, type CliContext, type Verb } from './common.js';
import { loadContainerConfig, loadPodConfig } from './config-file.js';
import { containerExitCode } from './attach.js';
import { interactive } from './exec.js';
import { keyValues } from './flags.js';
import { ensureImage } from './pull-if-absent.js';
import { buildRunConfigs } from './run-config.js';
import { verbArgs } from './verb-args.js';

const FLAGS = {
  name: { type: 'string' },
  namespace: { type: 'string' },
  port: { type: 'strings', short: 'p' },
  env: { type: 'strings', short: 'e' },
  label: { type: 'strings', short: 'l' },
  'host-network': { type: 'boolean' },
  entrypoint: { type: 'string' },
  workdir: { type: 'string', short: 'w' },
  'log-dir': { type: 'string' },
  runtime: { type: 'string', short: 'r' },
  'no-pull': { type: 'boolean' },
  interactive: { type: 'boolean', short: 'i' },
  tty: { type: 'boolean', short: 't' },
} as const;

async function runBoth(
  ctx: CliContext,
  pod: PodSandboxConfig,
  container: ContainerConfig,
  o: { runtime?: string; noPull: boolean },
): Promise<{ podId: string; containerId: string }> {
  const rt = ctx.cri().runtime;
  const image = container.image?.image;
  if (!image) throw new UsageError('the container config has no image.image');
  // Pull before the pod exists: a bad image reference then leaves nothing to clean up.
  if (!o.noPull) await ensureImage(ctx, image, pod);
  const { podSandboxId } = await rt.runPodSandbox({ config: pod, runtimeHandler: o.runtime ?? '' });
  try {
    const { containerId } = await rt.createContainer({ podSandboxId, config: container, sandboxConfig: pod });
    await rt.startContainer({ containerId });
    return { podId: podSandboxId, containerId };
  } catch (err) {
    await rt.stopPodSandbox({ podSandboxId }).catch(() => undefined);
    await rt.removePodSandbox({ podSandboxId }).catch(() => undefined);
    throw err;
  }
}

export const run: Verb = {
  summary: 'Run a container in a new pod',
  usage: [
    'berth run [-r HANDLER] CONTAINER.json|yaml POD.json|yaml',
    'berth run --name NAME [--namespace NS] [-p [IP:]HOST:CONTAINER[/udp]]... [-e K=V]... [-l K=V]...',
    '          [--host-network] [--entrypoint CMD] [-w DIR] [--log-dir DIR] [-r HANDLER] [-i] [-t]',
    '          IMAGE [ARGS...]',
    '',
    '  --name NAME         pod and container name (a DNS label)',
    '  --namespace NS      the pod\'s Kubernetes namespace (default "default")',
    '  -p, --port SPEC     publish a container port on the node (repeatable)',
    "  -e, --env K=V       environment variable (repeatable; K alone takes berth's own value)",
    "  --host-network      share the node's network namespace",
    "  --entrypoint CMD    replace the image's entrypoint; ARGS replace its command",
    '  --log-dir DIR       pod log directory (default /var/log/pods/NS_NAME_UID)',
    '  --no-pull           do not pull the image when it is absent',
    '  -i, -t              keep stdin open / allocate a terminal, and attach after starting',
    '',
    'Prints the container id (the pod id goes to stderr; with -i/-t both do). Flags go before IMAGE.',
  ].join('\n'),
  rawArgs: true,
  async run(args, ctx) {
    const { flags, positionals } = verbArgs(args, FLAGS, ctx, { stopAtPositional: true });
    let pod: PodSandboxConfig;
    let container: ContainerConfig;
    if (flags.name === undefined) {
      if (positionals.length !== 2) throw new UsageError('run takes CONTAINER.json POD.json, or --name NAME IMAGE [ARGS...]');
      container = loadContainerConfig(positionals[0]!);
      pod = loadPodConfig(positionals[1]!);
    } else {
      if (positionals.length === 0) throw new UsageError('run --name NAME needs an IMAGE');
      const [image, ...rest] = positionals as [string, ...string[]];
      ({ pod, container } = buildRunConfigs({
        name: flags.name,
        namespace: flags.namespace ?? 'default',
        image,
        args: rest,
        entrypoint: flags.entrypoint,
        ports: flags.port,
        env: flags.env,
        labels: keyValues(flags.label, '--label'),
        hostNetwork: flags['host-network'],
        tty: flags.tty,
        stdin: flags.interactive,
        workdir: flags.workdir,
        logDir: flags['log-dir'],
      }));
    }
    const { podId, containerId } = await runBoth(ctx, pod, container, { runtime: flags.runtime, noPull: flags['no-pull'] });
    ctx.err(`pod ${podId}`);
    if (!flags.interactive && !flags.tty) {
      ctx.out(containerId);
      return 0;
    }
    // The session owns stdout; the id goes with the other notes to stderr.
    ctx.err(`container ${containerId}`);
    const { url } = await ctx.cri().runtime.attach({ containerId, stdin: flags.interactive, tty: flags.tty, stdout: true, stderr: !flags.tty });
    return containerExitCode(ctx, containerId, await interactive(ctx, url, { stdin: flags.interactive, tty: flags.tty }));
  },
};
