/** RuntimeService/UpdateContainerResources: CRI resources → OCI LinuxResources → runc update; persisted. */
import { LinuxContainerResourcesSchema } from '../../api/cri/runtime/v1/api_pb.js';
import { errors } from '../../errors.js';
import { planResources } from '../../oci/resources.js';
import { containerLockKey } from './lifecycle.js';
import { encodeMessage, findContainer, type RuntimeContext } from '../server/runtime-context.js';
import type { RuntimeHandlers } from '../server/server.js';

export const updateContainerResources =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['updateContainerResources']> =>
  async (req, call) => {
    const ns = call.namespace;
    const c = findContainer(ctx, ns, req.containerId);
    if (!req.linux) throw errors.invalidArgument('container.no_resources', 'linux resources are required (windows resources are not supported)');
    const { resources } = planResources(req.linux, {}, { restrictOomScoreAdj: ctx.settings.restrictOomScoreAdj }, 'linux');
    await ctx.locks.run(containerLockKey(ns, c.id), async () => {
      const cur = ctx.containers.get(ns, c.id);
      if (!cur) throw errors.notFound('container.not_found', `container ${c.id} not found`);
      // An exited container has no cgroup left: only the record changes (as containerd).
      if (cur.state === 'created' || cur.state === 'running') {
        await ctx.tasks.update(ns, c.id, resources as Record<string, unknown>);
      }
      ctx.containers.update(ns, c.id, (r) => {
        r.resources = encodeMessage(LinuxContainerResourcesSchema, req.linux!);
      });
    });
    return {};
  };
