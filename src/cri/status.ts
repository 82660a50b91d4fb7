/** RuntimeService/Status: RuntimeReady and NetworkReady, each with a reason when false. */
import type { RuntimeHandlers } from './server.js';

export interface Condition {
  ready: boolean;
  reason?: string;
  message?: string;
}

export interface StatusDeps {
  runtimeCondition(): Promise<Condition>;
  networkCondition(): Promise<Condition>;
  /** Extra verbose info (JSON strings by key). */
  info?(): Promise<Record<string, string>>;
}

export const status = (deps: StatusDeps): NonNullable<RuntimeHandlers['status']> => async (req) => {
  const [rt, net] = await Promise.all([deps.runtimeCondition(), deps.networkCondition()]);
  const cond = (type: string, c: Condition) => ({ type, status: c.ready, reason: c.reason ?? '', message: c.message ?? '' });
  return {
    status: { conditions: [cond('RuntimeReady', rt), cond('NetworkReady', net)] },
    info: req.verbose && deps.info ? await deps.info() : {},
  };
};
