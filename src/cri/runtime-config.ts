/**
 * RuntimeService/RuntimeConfig (the cgroup driver kubelet must match) and
 * UpdateRuntimeConfig (kubelet's pod CIDR, kept in settings; a value that is not a CIDR list is
 * InvalidArgument, as containerd fails parsing it).
 */
import { isIP } from 'node:net';
import { CgroupDriver } from '../api/cri/runtime/v1/api_pb.js';
import { errors } from '../errors.js';
import type { RuntimeContext } from './server/runtime-context.js';
import type { RuntimeHandlers } from './server/server.js';

export const runtimeConfig =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['runtimeConfig']> =>
  async () => {
    const h = ctx.settings.runtimes[ctx.settings.defaultRuntime];
    return { linux: { cgroupDriver: h?.systemdCgroup ? CgroupDriver.SYSTEMD : CgroupDriver.CGROUPFS } };
  };

/** pod_cidr: empty, or comma-separated CIDRs (dual stack), each an address and a prefix that fits it. */
export function checkPodCidr(cidr: string): void {
  if (cidr === '') return;
  const bad = (why: string) =>
    errors.invalidArgument(
      'runtime.bad_pod_cidr',
      `runtime_config.network_config.pod_cidr ${JSON.stringify(cidr.length > 100 ? cidr.slice(0, 100) + '…' : cidr)}: ${why}`,
    );
  if (cidr.length > 200) throw bad(`${cidr.length} characters`);
  for (const part of cidr.split(',')) {
    const m = /^([^/]+)\/(\d{1,3})$/.exec(part.trim());
    const family = m ? isIP(m[1]!) : 0;
    if (!m || family === 0) throw bad('not a CIDR (address/prefix)');
    if (Number(m[2]) > (family === 4 ? 32 : 128)) throw bad(`prefix /${m[2]} too long for IPv${family}`);
  }
}

export const updateRuntimeConfig =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['updateRuntimeConfig']> =>
  async (req) => {
    const cidr = req.runtimeConfig?.networkConfig?.podCidr ?? '';
    checkPodCidr(cidr);
    if (cidr !== '' && cidr !== ctx.settings.podCidr) {
      ctx.settings.podCidr = cidr;
      ctx.log.info('pod CIDR updated', { podCidr: cidr });
    }
    return {};
  };
