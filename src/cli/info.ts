/**
 * `berth info`: runtime status conditions (RuntimeReady, NetworkReady), runtime handlers with
 * their features, the cgroup driver RuntimeConfig answers (kubelet's cgroupDriver must match
 * it), and the config.
 */
import { CgroupDriver } from '../api/cri/runtime/v1/api_pb.js';
import { table, toJson, type Verb } from './common.js';

export const info: Verb = {
  summary: 'Show runtime conditions and the cgroup driver',
  usage: 'berth info [-o json]',
  async run(_args, ctx) {
    const res = await ctx.cri().runtime.status({ verbose: true });
    const rc = await ctx.cri().runtime.runtimeConfig({});
    const driver = rc.linux ? (rc.linux.cgroupDriver === CgroupDriver.SYSTEMD ? 'systemd' : 'cgroupfs') : 'unknown';
    if (ctx.output === 'json') {
      const info = Object.fromEntries(Object.entries(res.info).map(([k, v]) => [k, safeJson(v)]));
      ctx.out(toJson({ status: res.status, cgroupDriver: driver, runtimeHandlers: res.runtimeHandlers, features: res.features, info }));
      return 0;
    }
    ctx.out(
      table(
        ['CONDITION', 'STATUS', 'REASON', 'MESSAGE'],
        (res.status?.conditions ?? []).map((c) => [c.type, String(c.status), c.reason, c.message]),
      ),
    );
    ctx.out(`cgroup driver: ${driver} (RuntimeConfig; kubelet's cgroupDriver must match)`);
    if (res.runtimeHandlers.length > 0) {
      ctx.out('');
      ctx.out(
        table(
          ['HANDLER', 'RECURSIVE_READ_ONLY', 'USER_NAMESPACES'],
          res.runtimeHandlers.map((h) => [
            h.name === '' ? '(default)' : h.name,
            String(h.features?.recursiveReadOnlyMounts ?? false),
            String(h.features?.userNamespaces ?? false),
          ]),
        ),
      );
    }
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
