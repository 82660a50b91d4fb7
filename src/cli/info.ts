/** `berth info`: runtime status conditions (RuntimeReady, NetworkReady) and config. */
import { table, toJson, type Verb } from './common.js';

export const info: Verb = {
  summary: 'Show runtime conditions',
  usage: 'berth info [-o json]',
  async run(_args, ctx) {
    const res = await ctx.cri().runtime.status({ verbose: true });
    if (ctx.output === 'json') {
      const info = Object.fromEntries(Object.entries(res.info).map(([k, v]) => [k, safeJson(v)]));
      ctx.out(toJson({ status: res.status, info }));
      return 0;
    }
    ctx.out(table(['CONDITION', 'STATUS', 'REASON', 'MESSAGE'], (res.status?.conditions ?? []).map((c) => [c.type, String(c.status), c.reason, c.message])));
    return 0;
  },
};

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}
