/** `berth create POD CONTAINER.json POD.json`: CreateContainer in an existing pod (crictl semantics). */
import { UsageError, type Verb } from './common.js';
import { loadContainerConfig, loadPodConfig } from './config-file.js';
import { ensureImage } from './pull-if-absent.js';
import { resolvePodId } from './resolve.js';
import { verbArgs } from './verb-args.js';

export const create: Verb = {
  summary: 'Create a container in a pod from config files',
  usage: [
    'berth create [--no-pull] POD CONTAINER.json|yaml POD.json|yaml',
    '',
    "POD is the pod's id, id prefix or name; POD.json is the config the pod was run with (the",
    'CRI wants it again). The image is pulled first unless present (--no-pull: never). Prints',
    'the container id.',
  ].join('\n'),
  rawArgs: true,
  async run(args, ctx) {
    const { flags, positionals } = verbArgs(args, { 'no-pull': { type: 'boolean' } }, ctx);
    if (positionals.length !== 3) throw new UsageError('create takes POD CONTAINER.json POD.json');
    const [podRef, containerFile, podFile] = positionals as [string, string, string];
    const config = loadContainerConfig(containerFile);
    const sandboxConfig = loadPodConfig(podFile);
    if (!config.image?.image) throw new UsageError(`${containerFile}: image.image is required`);
    if (!flags['no-pull']) await ensureImage(ctx, config.image.image, sandboxConfig);
    const podSandboxId = await resolvePodId(ctx, podRef);
    const res = await ctx.cri().runtime.createContainer({ podSandboxId, config, sandboxConfig });
    ctx.out(res.containerId);
    return 0;
  },
};
