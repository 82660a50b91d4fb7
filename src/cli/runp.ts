/** `berth runp [--runtime HANDLER] POD.json|yaml`: RunPodSandbox from a crictl-style pod config. */
import { UsageError, type Verb } from './common.js';
import { loadPodConfig } from './config-file.js';
import { verbArgs } from './verb-args.js';

export const runp: Verb = {
  summary: 'Run a pod sandbox from a config file',
  usage: [
    'berth runp [-r|--runtime HANDLER] POD.json|POD.yaml',
    '',
    'The file is a runtime.v1.PodSandboxConfig in protobuf JSON (camelCase or snake_case field',
    'names), as crictl uses; "-" reads standard input. Prints the pod id.',
  ].join('\n'),
  rawArgs: true,
  async run(args, ctx) {
    const { flags, positionals } = verbArgs(args, { runtime: { type: 'string', short: 'r' } }, ctx);
    if (positionals.length !== 1) throw new UsageError('runp takes exactly one POD config file');
    const config = loadPodConfig(positionals[0]!);
    const res = await ctx.cri().runtime.runPodSandbox({ config, runtimeHandler: flags.runtime ?? '' });
    ctx.out(res.podSandboxId);
    return 0;
  },
};
