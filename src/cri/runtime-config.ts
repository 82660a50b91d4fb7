/**
 * RuntimeService/RuntimeConfig (the cgroup driver kubelet must match) and
 * UpdateRuntimeConfig (kubelet's pod CIDR; kept in settings, never an error, as containerd).
 */
import { CgroupDriver } from '../api/cri/runtime/v1/api_pb.js';
import type { RuntimeContext } from './runtime-context.js';
import type { RuntimeHandlers } from './server.js';

export const runtimeConfig = (ctx: RuntimeContext): NonNullable<RuntimeHandlers['runtimeConfig']> => async () => {
  const h = ctx.settings.runtimes[ctx.settings.defaultRuntime];
  return { linux: { cgroupDriver: h?.systemdCgroup ? CgroupDriver.SYSTEMD : CgroupDriver.CGROUPFS } };
};

export const updateRuntimeConfig = (ctx: RuntimeContext): NonNullable<RuntimeHandlers['updateRuntimeConfig']> => async (req) => {
  const cidr = req.runtimeConfig?.networkConfig?.podCidr ?? '';
  if (cidr !== '' && cidr !== ctx.settings.podCidr) {
    ctx.settings.podCidr = cidr;
    ctx.log.info('pod CIDR updated', { podCidr: cidr });
  }
  return {};
};
