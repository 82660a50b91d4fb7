/**
 * RuntimeService/UpdatePodSandboxResources (kubelet, on in-place pod resize, after it has
 * reconfigured the pod cgroups itself): the pod-level overhead and resources are recorded in
 * the sandbox's config (linux.overhead / linux.resources), which PodSandboxStatus shows in its
 * verbose info (`config`). Best effort as the CRI says: berth changes no cgroup here.
 */
import { create } from '@bufbuild/protobuf';
import { LinuxPodSandboxConfigSchema, PodSandboxConfigSchema } from '../../api/cri/runtime/v1/api_pb.js';
import { errors } from '../../errors.js';
import { planResources } from '../../oci/resources.js';
import { encodeMessage, type RuntimeContext } from '../server/runtime-context.js';
import type { RuntimeHandlers } from '../server/server.js';
import { sandboxConfigOf } from './common.js';
import { findVisibleSandbox, sandboxLockKey } from './stop.js';

export const updatePodSandboxResources =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['updatePodSandboxResources']> =>
  async (req, call) => {
    const ns = call.namespace;
    if (req.podSandboxId === '') throw errors.invalidArgument('sandbox.no_id', 'pod_sandbox_id is required');
    if (!req.overhead && !req.resources) throw errors.invalidArgument('sandbox.no_resources', 'overhead or resources is required');
    // Recorded as given, so checked as CreateContainer would (negative limits, oom_score_adj range…).
    if (req.overhead) planResources(req.overhead, {}, {}, 'overhead');
    if (req.resources) planResources(req.resources, {}, {}, 'resources');
    const first = findVisibleSandbox(ctx, ns, req.podSandboxId);
    await ctx.locks.run(sandboxLockKey(first.id), async () => {
      const rec = ctx.sandboxes.get(ns, first.id);
      if (!rec) throw errors.notFound('sandbox.not_found', `pod sandbox ${req.podSandboxId} not found`);
      const config = sandboxConfigOf(rec);
      config.linux ??= create(LinuxPodSandboxConfigSchema);
      if (req.overhead) config.linux.overhead = req.overhead;
      if (req.resources) config.linux.resources = req.resources;
      ctx.sandboxes.update(ns, rec.id, (r) => {
        r.config = encodeMessage(PodSandboxConfigSchema, config);
      });
    });
    ctx.log.info('pod sandbox resources recorded', { id: first.id });
    return {};
  };
