/** `berth version`: client and daemon versions. */
import { BERTH_VERSION } from '../version.js';
import { toJson, type Verb } from './common.js';

export const version: Verb = {
  summary: 'Show client and runtime versions',
  usage: 'berth version',
  async run(_args, ctx) {
    const v = await ctx.cri().runtime.version({});
    if (ctx.output === 'json') ctx.out(toJson({ client: BERTH_VERSION, runtime: v }));
    else
      ctx.out(
        `Client:          berth ${BERTH_VERSION}\nRuntimeName:     ${v.runtimeName}\nRuntimeVersion:  ${v.runtimeVersion}\nRuntimeApiVersion: ${v.runtimeApiVersion}`,
      );
    return 0;
  },
};
