/**
 * RuntimeService/Status: RuntimeReady and NetworkReady, each with a reason when false; the
 * runtime handlers with the features probed at start (the default handler twice: under its
 * name and with the empty name kubelet looks up), and the runtime-wide features.
 */
import type { RuntimeHandlers } from './server/server.js';

export interface Condition {
  ready: boolean;
  reason?: string;
  message?: string;
}

export interface HandlerFeatureView {
  recursiveReadOnlyMounts: boolean;
  userNamespaces: boolean;
}

export interface StatusFeatures {
  defaultHandler: string;
  handlers: Record<string, HandlerFeatureView>;
  supplementalGroupsPolicy: boolean;
  userNamespacesHostNetwork: boolean;
  mountOptions?: boolean;
}

export interface StatusDeps {
  runtimeCondition(): Promise<Condition>;
  networkCondition(): Promise<Condition>;
  /** Extra verbose info (JSON strings by key). */
  info?(): Promise<Record<string, string>>;
  features?: StatusFeatures;
}

export function runtimeHandlerList(f: StatusFeatures): Array<{ name: string; features: HandlerFeatureView }> {
  const view = (h: HandlerFeatureView | undefined) => ({
    recursiveReadOnlyMounts: h?.recursiveReadOnlyMounts ?? false,
    userNamespaces: h?.userNamespaces ?? false,
  });
  const named = Object.keys(f.handlers)
    .sort()
    .map((name) => ({ name, features: view(f.handlers[name]) }));
  return [{ name: '', features: view(f.handlers[f.defaultHandler]) }, ...named];
}

export const status =
  (deps: StatusDeps): NonNullable<RuntimeHandlers['status']> =>
  async (req) => {
    const [rt, net] = await Promise.all([deps.runtimeCondition(), deps.networkCondition()]);
    const cond = (type: string, c: Condition) => ({ type, status: c.ready, reason: c.reason ?? '', message: c.message ?? '' });
    const f = deps.features;
    return {
      status: { conditions: [cond('RuntimeReady', rt), cond('NetworkReady', net)] },
      info: req.verbose && deps.info ? await deps.info() : {},
      runtimeHandlers: f ? runtimeHandlerList(f) : [],
      features: f
        ? {
            supplementalGroupsPolicy: f.supplementalGroupsPolicy,
            userNamespacesHostNetwork: f.userNamespacesHostNetwork,
            mountOptions: f.mountOptions ?? false,
          }
        : undefined,
    };
  };
