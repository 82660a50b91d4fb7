/**
 * Idempotent teardown steps of a pod sandbox, shared by RunPodSandbox's unwinding,
 * StopPodSandbox, RemovePodSandbox and recovery. Each step succeeds when its object is
 * already gone, so a retry after a partial failure finishes the job.
 */
import type { PodSandboxConfig } from '../../api/cri/runtime/v1/api_pb.js';
import { Protocol } from '../../api/cri/runtime/v1/api_pb.js';
import { isBerthError } from '../../errors.js';
import type { PortMapping } from '../../network/index.js';
import type { SandboxRecord } from '../../core/metadata/records.js';
import type { RuntimeContext } from '../server/runtime-context.js';
import { sleep } from '../server/ports.js';
import { constants as osConstants } from 'node:os';

/** How long to wait for a SIGKILLed pause process to be reaped before deleting anyway. */
const KILL_WAIT_MS = 10_000;

export function portMappingsOf(c: PodSandboxConfig): PortMapping[] {
  return c.portMappings.map((p) => ({
    protocol: Protocol[p.protocol] ?? 'TCP',
    containerPort: p.containerPort,
    hostPort: p.hostPort,
    hostIp: p.hostIp || undefined,
  }));
}

/**
 * SIGKILL the pause task, wait for it and delete it (which also removes its bundle and lets
 * an idle shim exit). A task the manager does not know counts as deleted.
 */
export async function killAndDeletePause(ctx: RuntimeContext, ns: string, id: string): Promise<void> {
  const known = ctx.tasks.list().some((t) => t.namespace === ns && t.id === id);
  if (!known) return;
  try {
    await ctx.tasks.kill(ns, id, osConstants.signals.SIGKILL);
  } catch (err) {
    // Already stopped (or never started) tasks refuse signals; deletion below still works.
    if (isBerthError(err, 'NotFound')) return;
    ctx.log.debug('pause kill failed (continuing with delete)', { sandbox: id, error: (err as Error).message });
  }
  const timer = sleep(ctx.clock, KILL_WAIT_MS);
  await Promise.race([ctx.tasks.wait(ns, id).catch(() => undefined), timer.done]);
  timer.cancel();
  try {
    await ctx.tasks.delete(ns, id);
  } catch (err) {
    if (!isBerthError(err, 'NotFound')) throw err;
  }
}

/** CNI DEL (with the pod's identity and port mappings) and removal of the netns handle. */
export async function teardownNetwork(ctx: RuntimeContext, o: { id: string; netnsPath?: string; config: PodSandboxConfig }): Promise<void> {
  const md = o.config.metadata;
  await ctx.cni.teardownPod({
    id: o.id,
    netnsPath: o.netnsPath,
    podName: md?.name,
    podNamespace: md?.namespace,
    podUid: md?.uid,
    portMappings: portMappingsOf(o.config),
  });
  if (o.netnsPath) await ctx.pods.removeNetns(o.netnsPath);
}

/** Unpins every namespace handle of the pod (network included); idempotent. */
export async function unpinSandbox(ctx: RuntimeContext, rec: SandboxRecord): Promise<void> {
  const pins = rec.pins ?? {};
  await ctx.pods.unpin(rec.netnsPath ? { ...pins, net: rec.netnsPath } : pins);
}
