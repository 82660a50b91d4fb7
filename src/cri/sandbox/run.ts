/**
 * RuntimeService/RunPodSandbox (containerd 1.7 pkg/cri/server/sandbox_run.go semantics).
 *
 * validate → reserve name → runtime handler → record ('creating') → pin the pod's namespaces
 * (network, IPC, UTS, and a user namespace owning them; lo up, hostname and sysctls set by
 * the pin process) → CNI ADD (from the moment the pins exist, overlapped with the rest) → hostname/hosts/resolv.conf →
 * /dev/shm → [only when the pod shares a pid namespace: sandbox image → pause rootfs snapshot
 * → OCI spec → pause task create + start] → record READY.
 *
 * Without a shared pid namespace there is no pause process at all: the pinned namespaces
 * hold the pod (CRI-O's drop_infra_ctr idea) and the containers join them by path.
 *
 * The record is written before any resource exists, with every resource path derived from
 * the sandbox id, so a berthd crash mid-way leaves something recovery can tear down. Each
 * step pushes its undo onto a Cleanup stack (src/cleanup.ts) before it starts making
 * anything (CNI DEL before the ADD); any failure unwinds all of them, leaving no netns, IP,
 * shim, mount, snapshot, record or name behind. If a resource undo fails, the record and the
 * name stay: the record becomes NOTREADY with the failed undos in `leftover`, so kubelet sees a
 * NOTREADY pod and its StopPodSandbox / RemovePodSandbox (or recovery) finishes the job.
 *
 * A RunPodSandbox for a name whose run is still in flight (kubelet retrying after its
 * deadline) waits for that run and answers with the same sandbox id (ctx.sandboxRuns).
 */
import type { PodSandboxConfig } from '../../api/cri/runtime/v1/api_pb.js';
import { SANDBOX_RECORD_VERSION, type SandboxRecord } from '../../core/metadata/sandbox-record.js';
import { errors } from '../../errors.js';
import { pinPaths, type PinKind } from '../../network/index.js';
import { sandboxSpec, validateSysctls, type ImageConfig as OciImageConfig } from '../../oci/index.js';
import { podNamespacePlan } from '../../oci/namespaces.js';
import { NamespaceMode, PodSandboxConfigSchema } from '../../api/cri/runtime/v1/api_pb.js';
import type { RuntimeHandlers } from '../server/server.js';
import { encodeMessage, newId, nowNanos, type RuntimeContext } from '../server/runtime-context.js';
import { Cleanup, type UnwindResult } from '../../cleanup.js';
import type { LeftoverStep } from '../../core/metadata/sandbox-record.js';
import { checkUsernsReachable, prepareContainerRootfs, removeRootfsSnapshot } from '../container/userns.js';
import { SnapshotLabel } from '../../core/snapshots/labels.js';
import { isHostIpc, isHostNetwork, MAX_META_LENGTH, sandboxName } from './common.js';
import { removeSandboxDirs, sandboxPaths, validateDns, writeSandboxFiles } from './files.js';
import { sandboxLockKey } from './stop.js';
import { killAndDeletePause, portMappingsOf, teardownNetwork } from './teardown.js';
import { loadLocalhostSeccomp } from '../container/seccomp-profile.js';
import { mkdir } from 'node:fs/promises';
import { faultable } from '../../fault.js';

/** cgroup parent for pods that name none (cgroupfs driver). */
export const DEFAULT_CGROUP_PARENT = '/kubepods/berth';

/** Linux HOST_NAME_MAX. */
export const MAX_HOSTNAME_LENGTH = 64;

export function validateSandboxConfig(c: PodSandboxConfig | undefined): asserts c is PodSandboxConfig {
  if (!c) throw errors.invalidArgument('sandbox.bad_config', 'config is required');
  const md = c.metadata;
  if (!md) throw errors.invalidArgument('sandbox.bad_config', 'config.metadata is required');
  if (!md.name) throw errors.invalidArgument('sandbox.bad_config', 'config.metadata.name is required');
  if (!md.namespace) throw errors.invalidArgument('sandbox.bad_config', 'config.metadata.namespace is required');
  if (!md.uid) throw errors.invalidArgument('sandbox.bad_config', 'config.metadata.uid is required');
  // Kubernetes names are DNS subdomains/labels; far longer ones only reach argv limits
  // (E2BIG spawning the pin process) or path limits further in.
  for (const [field, v] of [
    ['name', md.name],
    ['namespace', md.namespace],
    ['uid', md.uid],
  ] as const) {
    if (v.length > MAX_META_LENGTH) {
      throw errors.invalidArgument('sandbox.bad_config', `config.metadata.${field}: ${v.length} characters, at most ${MAX_META_LENGTH}`);
    }
  }
  if (c.hostname.length > MAX_HOSTNAME_LENGTH) {
    throw errors.invalidArgument('sandbox.bad_config', `config.hostname: ${c.hostname.length} characters, at most ${MAX_HOSTNAME_LENGTH} (HOST_NAME_MAX)`);
  }
  if (c.logDirectory !== '' && !c.logDirectory.startsWith('/')) {
    throw errors.invalidArgument('sandbox.bad_config', `config.log_directory ${JSON.stringify(c.logDirectory)} must be an absolute path`);
  }
  for (const [i, p] of c.portMappings.entries()) {
    const ok = (n: number) => Number.isInteger(n) && n >= 0 && n <= 65535;
    for (const [field, n] of [
      ['container_port', p.containerPort],
      ['host_port', p.hostPort],
    ] as const) {
      if (!ok(n)) throw errors.invalidArgument('sandbox.bad_config', `config.port_mappings[${i}].${field}: ${n} is not within 0-65535`);
    }
  }
  const nso = c.linux?.securityContext?.namespaceOptions;
  if (nso?.usernsOptions && nso.usernsOptions.mode === NamespaceMode.POD) {
    // As Kubernetes validates hostUsers=false: a pod user namespace cannot own the host's pid or
    // IPC namespace. The host network is allowed (user_namespaces_host_network, Kubernetes 1.33+).
    for (const [field, mode] of [
      ['pid', nso.pid],
      ['ipc', nso.ipc],
    ] as const) {
      if (mode === NamespaceMode.NODE) {
        throw errors.invalidArgument(
          'sandbox.bad_config',
          `config.linux.security_context.namespace_options: userns_options mode POD cannot be combined with ${field} NODE`,
        );
      }
    }
  }
  validateDns(c.dnsConfig);
}

/** The handler name, checked against the configured runtimes. */
export function resolveRuntimeHandler(ctx: RuntimeContext, requested: string): string {
  const name = requested || ctx.settings.defaultRuntime;
  if (!ctx.settings.runtimes[name]) {
    throw errors.invalidArgument('sandbox.unknown_runtime_handler', `runtime_handler ${JSON.stringify(name)} is not configured`);
  }
  return name;
}

type RunRequest = Parameters<NonNullable<RuntimeHandlers['runPodSandbox']>>[0];
type RunCall = Parameters<NonNullable<RuntimeHandlers['runPodSandbox']>>[1];

export const runPodSandbox =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['runPodSandbox']> =>
  async (req, call) => {
    validateSandboxConfig(req.config);
    // A retry of a run still in flight (same metadata, same attempt) joins it.
    const key = `${call.namespace}/${sandboxName(req.config.metadata!)}`;
    const inflight = ctx.sandboxRuns.get(key);
    if (inflight) {
      ctx.log.info('RunPodSandbox retried while the first call runs: waiting for it', { name: sandboxName(req.config.metadata!) });
      return { podSandboxId: await inflight };
    }
    const run = runSandbox(ctx, req, call);
    ctx.sandboxRuns.set(key, run);
    try {
      return { podSandboxId: await run };
    } finally {
      if (ctx.sandboxRuns.get(key) === run) ctx.sandboxRuns.delete(key);
    }
  };

/** After a failed run's unwinding: keep the record (NOTREADY, what is left) if a resource undo failed. */
function keepLeftover(ctx: RuntimeContext, ns: string, id: string, undone: UnwindResult<LeftoverStep>): void {
  if (undone.failed.length === 0) return;
  const leftover = [...new Set(undone.failed.map((f) => f.tag).filter((t): t is LeftoverStep => t !== undefined))];
  ctx.log.warn('RunPodSandbox could not undo everything: the pod stays NOTREADY for StopPodSandbox/RemovePodSandbox to finish', {
    sandbox: id,
    leftover: leftover.join(','),
  });
  try {
    ctx.sandboxes.update(ns, id, (r) => {
      r.state = 'notready';
      r.leftover = leftover;
      r.networkDown = r.hostNetwork || !leftover.includes('cni');
      r.ips = [];
      delete r.pid;
    });
  } catch (err) {
    ctx.log.warn('could not mark the half-made pod sandbox', { sandbox: id, error: (err as Error).message });
  }
}

async function runSandbox(ctx: RuntimeContext, req: RunRequest, call: RunCall): Promise<string> {
  const ns = call.namespace;
  const config = req.config!;
  const md = config.metadata!;
  const id = newId();
  const span = <T>(step: string, fn: () => Promise<T> | T) => ctx.tracer.span(id, step, faultable(`RunPodSandbox.${step}`, fn));
  const cleanup = new Cleanup<LeftoverStep>(ctx.log);
  let pendingCni: Promise<void> | undefined;
  const name = sandboxName(md);
  const hostNetwork = isHostNetwork(config);
  const hostIpc = isHostIpc(config);
  const paths = sandboxPaths(ctx.settings, id);

  const nsField = 'config.linux.security_context.namespace_options';
  // Checked before anything is made: the pin process applies the sysctls.
  const plan = podNamespacePlan(config.linux?.securityContext?.namespaceOptions, nsField);
  const sysctls = validateSysctls(config.linux?.sysctls ?? {}, { hostNetwork, hostIpc }, 'config.linux.sysctls');
  const pinKinds: PinKind[] = [];
  if (plan.pin.userns) pinKinds.push('user');
  if (plan.pin.net) pinKinds.push('net');
  if (plan.pin.ipc) pinKinds.push('ipc');
  if (plan.pin.uts) pinKinds.push('uts');
  const pins = pinPaths(ctx.settings.netnsDir, id, pinKinds);
  if (plan.pin.userns) await checkUsernsReachable(ctx.settings.state);
  // Read before anything is made: a profile that cannot be loaded fails the call up front.
  const localhostSeccompProfile = await loadLocalhostSeccomp(config.linux?.securityContext, 'config.linux.security_context', 'sandbox.seccomp_profile');

  // Forgets a failed earlier create could not finish (a full metadata disk) go first: this may
  // be its retry, and its name must be free once the disk has room.
  await ctx.bookkeepingRetries.flush();
  return ctx.locks.run(sandboxLockKey(id), async () => {
    try {
      await span('reserve-name', () => ctx.names.reserve(ns, name, id));
      cleanup.pushBookkeeping('release name', () => ctx.names.release(ns, name, id));

      const runtime = await span('resolve-runtime', () => resolveRuntimeHandler(ctx, req.runtimeHandler));
      const handler = ctx.settings.runtimes[runtime]!;

      // The record names every resource (derived from the id) before any exists: a crash
      // mid-way leaves something recovery can tear down.
      const rec: SandboxRecord = {
        version: SANDBOX_RECORD_VERSION,
        id,
        name,
        meta: { name: md.name, namespace: md.namespace, uid: md.uid, attempt: md.attempt },
        state: 'creating',
        createdAt: nowNanos().toString(),
        runtimeHandler: runtime,
        config: encodeMessage(PodSandboxConfigSchema, config),
        labels: { ...config.labels },
        annotations: { ...config.annotations },
        netnsPath: pins.net,
        ips: [],
        sandboxDir: paths.rootDir,
        cgroupParent: config.linux?.cgroupParent || DEFAULT_CGROUP_PARENT,
        hostNetwork,
        hostIpc,
        pins,
        pause: plan.pause,
        ...(plan.pause ? { snapshotKey: id, imageRef: ctx.settings.sandboxImage } : {}),
        networkDown: false,
        extra: {},
      };
      await span('record-create', () => ctx.sandboxes.put(ns, rec));
      cleanup.pushBookkeeping('delete record', () => ctx.sandboxes.delete(ns, id));

      // The pins, the sandbox files and (with a pause) the pause's image, snapshot and spec do
      // not depend on each other: made at once. CNI and the pause task need the pins.
      const pinned = span('pin', async () => {
        cleanup.push('unpin namespaces', () => ctx.pods.unpin(pins), 'unpin');
        await ctx.pods.pin({
          id,
          dir: ctx.settings.netnsDir,
          ...plan.pin,
          hostname: config.hostname,
          sysctls,
        });
      });
      const files = span('sandbox-files', async () => {
        cleanup.push('remove sandbox dirs', () => removeSandboxDirs(ctx.pods, paths), 'sandbox-dirs');
        await writeSandboxFiles(paths, { hostname: config.hostname, hostNetwork, podIp: undefined, dns: config.dnsConfig });
        // The state dir also tells recovery that this boot made the pod (it lives under /run).
        await mkdir(paths.stateDir, { recursive: true, mode: 0o700 });
        if (!hostIpc) await ctx.pods.mountShm(paths.shmPath);
      });
      const pausePrepared = plan.pause
        ? (async () => {
            const image = await span('ensure-image', async () => {
              const ref = ctx.settings.sandboxImage;
              return (await ctx.images.find(ns, ref)) ?? (await ctx.images.pull(ns, ref, undefined, undefined, call.signal));
            });
            rec.image = image.id;
            const rootfs = await span('snapshot', async () => {
              // In a pod user namespace the pause's image files must belong to the mapped ids too
              // (runc creates mount points in it as the pod's root): its layers are idmapped with
              // the pinned user namespace, which must exist first.
              if (plan.pin.userns) await pinned;
              cleanup.push('remove snapshot', () => removeRootfsSnapshot(ctx, id), 'snapshot');
              const r = await prepareContainerRootfs(ctx, id, image.topChainID, config, { [SnapshotLabel.sandbox]: id }, ctx.settings.state, pins.user);
              // Staging mounts a crash leaves are swept at the next start (sweepIdmapStaging).
              cleanup.push('release idmapped rootfs layers', () => r.release());
              return r;
            });
            const spec = await span('spec', () =>
              sandboxSpec({
                id,
                config,
                image: image.config.config as OciImageConfig,
                rootfsPath: 'rootfs',
                shmPath: paths.shmPath,
                resolvConfPath: paths.resolvConfPath,
                netnsPath: pins.net,
                pins,
                localhostSeccompProfile,
                options: {
                  restrictOomScoreAdj: ctx.settings.restrictOomScoreAdj,
                  defaultCgroupParent: DEFAULT_CGROUP_PARENT,
                  podAnnotations: handler.podAnnotations,
                },
              }),
            );
            return { rootfs, spec };
          })()
        : undefined;
      // CNI ADD needs only the network pin: it starts as soon as that exists and runs while the
      // sandbox files, the pause's snapshot and spec and the pause task are made (plugins
      // configure the netns by path and nothing else needs the network).
      let cniDone: Promise<void> | undefined;
      if (pins.net) {
        const netnsPath = pins.net;
        const dns = config.dnsConfig;
        cniDone = pinned
          .then(() => {
            // On the stack before the ADD starts (an ADD cut short may have reserved an IP), and
            // above the pins' undo, so it unwinds before them.
            cleanup.push('cni teardown', () => teardownNetwork(ctx, { id, netnsPath, config }), 'cni');
            return span('cni-add', () =>
              ctx.cni.setupPod({
                id,
                netnsPath,
                podName: md.name,
                podNamespace: md.namespace,
                podUid: md.uid,
                portMappings: portMappingsOf(config),
                dns: dns ? { servers: dns.servers, searches: dns.searches, options: dns.options } : undefined,
              }),
            );
          })
          .then((result) => {
            rec.ips = result.ips;
            rec.cni = { result: result.raw, portMappings: portMappingsOf(config) };
          });
        cniDone.catch(() => undefined);
      }
      pendingCni = cniDone;

      // Every branch settles before a failure unwinds, so each has pushed its undo (the ADD in
      // flight is awaited by the catch below).
      const firstWave = await Promise.allSettled([pinned, files, pausePrepared]);
      for (const r of firstWave) if (r.status === 'rejected') throw r.reason;

      let pid: number | undefined;
      const prepared = (firstWave[2] as PromiseFulfilledResult<{ rootfs: Awaited<ReturnType<typeof prepareContainerRootfs>>; spec: unknown } | undefined>)
        .value;
      if (prepared) {
        const { rootfs, spec } = prepared;
        await span('task-create', async () => {
          cleanup.push('delete pause task', () => killAndDeletePause(ctx, ns, id), 'pause-task');
          // The pause's output is useless: no stdio at all (conmon gets none).
          await ctx.tasks.create({ namespace: ns, id, groupKey: id, runtime, spec: spec as unknown as Record<string, unknown>, rootfs: rootfs.mounts });
          rootfs.release();
        });
        pid = await span('task-start', () => ctx.tasks.start(ns, id));
      }
      if (cniDone) {
        await cniDone;
        // /etc/hosts names the pod IP, known only now.
        await span('hosts', () =>
          writeSandboxFiles(paths, { hostname: config.hostname, hostNetwork, podIp: rec.ips[0]?.split('/')[0], dns: config.dnsConfig }),
        );
      }

      await span('record-ready', () =>
        ctx.sandboxes.update(ns, id, (r) => {
          Object.assign(r, rec, { state: 'ready' });
          if (pid) r.pid = pid;
          else delete r.pid;
        }),
      );
      cleanup.commit();
      return id;
    } catch (err) {
      // Let an ADD in flight finish before its DEL runs.
      await pendingCni?.catch(() => undefined);
      const undone = await cleanup.unwind();
      keepLeftover(ctx, ns, id, undone);
      // A record delete or name release that failed (disk full) runs again later: a 'creating'
      // record is listed nowhere, but its name would fail the kubelet's retry for ever.
      ctx.bookkeepingRetries.add(undone.retry, ctx.log);
      throw err;
    }
  });
}
