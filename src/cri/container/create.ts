/**
 * RuntimeService/CreateContainer (containerd 1.7 CRI semantics, except that the task is
 * created here, so StartContainer only starts it).
 *
 * Steps, each undone in reverse on failure: reserve the name → resolve the CDI devices →
 * resolve the image (no pull) → rootfs snapshot → image volume views → read the image's user
 * db → OCI spec (CDI edits applied) → stdio (log, FIFOs) → task create → record CREATED →
 * CREATED event.
 */
import { realpathSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, normalize } from 'node:path';
import { MAX_META_LENGTH } from '../sandbox/common.js';
import {
  ContainerConfigSchema,
  LinuxContainerResourcesSchema,
  PodSandboxConfigSchema,
  type ContainerConfig,
  type PodSandboxConfig,
} from '../../api/cri/runtime/v1/api_pb.js';
import type { ContainerRecord, SandboxRecord } from '../../core/metadata/records.js';
import { errors } from '../../errors.js';
import { containerSpec, imageVolumeMounts, type ImageConfig, type SandboxFiles, type Spec } from '../../oci/index.js';
import type { Image } from '../../core/images/service.js';
import { applyCdiEdits, requestedCdiDevices, type CdiHost } from '../../cdi/index.js';
import { currentCapabilities, lookupPropagation, resolveHostMounts, statDevice } from './host.js';
import { containerRootDir, handlerName, prepareStdio, startLogForwarder, finishLogForwarder, containerStateDir } from './io.js';
import { copyVolumeContents, readUserDb, withMountedRootfs } from './rootfs.js';
import { prepareContainerRootfs, removeRootfsSnapshot } from './userns.js';
import { SnapshotLabel } from '../../core/snapshots/labels.js';
import { sandboxPaths } from '../sandbox/files.js';
import { loadLocalhostSeccomp } from './seccomp-profile.js';
import { prepareIdmapMounts } from './idmap.js';
import { checkImageMount, prepareImageVolumes } from './image-volume.js';
import { hasPause, podNamespacePathsOf } from '../sandbox/common.js';
import { sandboxLockKey } from '../sandbox/stop.js';
import { Cleanup } from '../../cleanup.js';
import { decodeMessage, encodeMessage, findSandbox, newId, nowNanos, type RuntimeContext } from '../server/runtime-context.js';
import type { RuntimeHandlers } from '../server/server.js';
import { faultable } from '../../fault.js';

const cdiHost: CdiHost = {
  statDevice,
  realpath(p) {
    try {
      return realpathSync(p);
    } catch {
      return undefined;
    }
  },
};

/** k8s_<container>_<pod>_<namespace>_<uid>_<attempt>, as the kubelet's dockershim named them. */
export function containerName(c: ContainerConfig, sb: PodSandboxConfig): string {
  const m = sb.metadata;
  return ['k8s', c.metadata?.name ?? '', m?.name ?? '', m?.namespace ?? '', m?.uid ?? '', String(c.metadata?.attempt ?? 0)].join('_');
}

/** The pod's shared files (hostname, hosts, resolv.conf, shm) as RunPodSandbox laid them out. */
export function sandboxFilesOf(ctx: RuntimeContext, sb: SandboxRecord): SandboxFiles {
  const p = sandboxPaths(ctx.settings, sb.id);
  return { hostnamePath: p.hostnamePath, hostsPath: p.hostsPath, resolvConfPath: p.resolvConfPath, shmPath: p.shmPath };
}

/** Image config section as the spec generator wants it (a deep copy per container). */
function imageConfigOf(img: Image): ImageConfig {
  return structuredClone(img.config.config) as ImageConfig;
}

/**
 * Pid of the container whose pid namespace a TARGET-mode container joins: a container of the
 * same pod (joining another pod's processes would let a pod see and signal them).
 */
export function targetPid(ctx: Pick<RuntimeContext, 'containers'>, ns: string, config: ContainerConfig, sandboxId: string): number | undefined {
  const target = config.linux?.securityContext?.namespaceOptions?.targetId ?? '';
  if (target === '') return undefined;
  const c = ctx.containers.get(ns, target);
  if (!c) throw errors.notFound('container.target_not_found', `config.linux.security_context.namespace_options.target_id: container ${target} not found`);
  if (c.sandboxId !== sandboxId) {
    throw errors.invalidArgument(
      'container.target_other_pod',
      `config.linux.security_context.namespace_options.target_id: container ${target} belongs to another pod sandbox`,
    );
  }
  if (c.state !== 'running' || !c.pid)
    throw errors.failedPrecondition(
      'container.target_not_running',
      `config.linux.security_context.namespace_options.target_id: container ${target} is not running`,
    );
  return c.pid;
}

export const createContainer =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['createContainer']> =>
  async (req, call) => {
    const ns = call.namespace;
    const config = req.config;
    if (!config) throw errors.invalidArgument('container.no_config', 'config is required');
    if (!config.metadata || config.metadata.name === '') throw errors.invalidArgument('container.no_name', 'config.metadata.name is required');
    if (config.metadata.name.length > MAX_META_LENGTH) {
      throw errors.invalidArgument('container.bad_name', `config.metadata.name: ${config.metadata.name.length} characters, at most ${MAX_META_LENGTH}`);
    }
    // The log lives in the pod's log directory: a path climbing out of it would have berth
    // create and write files anywhere on the host.
    if (config.logPath !== '' && (normalize(config.logPath).split('/')[0] === '..' || config.logPath.includes('\0'))) {
      throw errors.invalidArgument('container.bad_log_path', `config.log_path ${JSON.stringify(config.logPath)} leaves the pod's log directory`);
    }
    const imageSpec = config.image?.image ?? '';
    if (imageSpec === '') throw errors.invalidArgument('container.no_image', 'config.image.image is required');
    const sb = findSandbox(ctx, ns, req.podSandboxId);
    if (sb.state !== 'ready') throw errors.failedPrecondition('sandbox.not_ready', `pod sandbox ${sb.id} is not ready`);
    // Only a pod that shares a pid namespace has a pause; the others are held by pinned namespaces.
    if (hasPause(sb) && !sb.pid) throw errors.failedPrecondition('sandbox.no_pid', `pod sandbox ${sb.id} has no running pause process`);
    const sandboxConfig = decodeMessage(PodSandboxConfigSchema, sb.config);
    const rroAt = config.mounts.findIndex((m) => m.recursiveReadOnly);
    if (rroAt >= 0 && ctx.settings.recursiveReadOnlyMounts?.[sb.runtimeHandler] !== true) {
      throw errors.invalidArgument(
        'container.rro_unsupported',
        `config.mounts[${rroAt}].recursive_read_only: runtime handler ${JSON.stringify(sb.runtimeHandler)} does not support recursive read-only mounts on this node (see Status runtime_handlers)`,
      );
    }

    config.mounts.forEach((m, i) => {
      if (m.image !== undefined && (m.image.image !== '' || m.hostPath === '')) checkImageMount(m, i);
    });

    const id = newId();
    const name = containerName(config, sandboxConfig);
    const step = <T>(what: string, fn: () => Promise<T> | T): Promise<T> =>
      ctx.tracer.span(sb.id, `CreateContainer.${what}`, faultable(`CreateContainer.${what}`, fn), { container: id, name: config.metadata!.name });
    const cleanup = new Cleanup(ctx.log);
    // This may retry a create whose name release failed (a full metadata disk): release first.
    await ctx.bookkeepingRetries.flush();
    try {
      await step('reserve_name', () => ctx.names.reserve(ns, name, id));
      // Always released (containerd does too): no record exists before the last step, so a kept
      // name would point at nothing kubelet could remove. A release that fails runs again later.
      cleanup.push('release name', () => ctx.names.release(ns, name, id), undefined, { retry: true });

      // CDI devices (device plugins, DRA): resolved before anything is made; an unknown or
      // ambiguous device, or a spec file that cannot be read, fails the create.
      const cdiRequests = requestedCdiDevices(config.CDIDevices, config.annotations);
      const cdiDevices = cdiRequests.length > 0 ? await step('cdi_resolve', () => ctx.cdi.resolve(cdiRequests)) : [];

      const image = await step('resolve_image', () => ctx.images.find(ns, imageSpec));
      if (!image)
        throw errors.notFound('container.image_not_found', `config.image.image: image ${JSON.stringify(imageSpec)} not found (CreateContainer does not pull)`);
      const imageConfig = imageConfigOf(image);

      const rootfs = await step('snapshot', () =>
        prepareContainerRootfs(ctx, id, image.topChainID, sandboxConfig, { [SnapshotLabel.container]: id }, ctx.settings.state, podNamespacePathsOf(sb).user),
      );
      cleanup.push('remove snapshot', () => removeRootfsSnapshot(ctx, id));
      // Idmapped image layers (pod user namespace): staging mounts until the task has the overlay.
      cleanup.push('release idmapped rootfs layers', () => rootfs.release());
      const mounts = rootfs.mounts;

      const tmp = containerStateDir(ctx, id);
      await mkdir(tmp, { recursive: true, mode: 0o700 });
      cleanup.push('remove container dirs', async () => {
        await finishLogForwarder(ctx, ns, id);
        await rm(tmp, { recursive: true, force: true });
        await rm(containerRootDir(ctx, id), { recursive: true, force: true });
      });
      // Image volumes (Mount.image): binds of the pod's read-only view of each image.
      const imageVolumes = await step('image_volumes', () =>
        prepareImageVolumes(ctx, ns, sb.id, config.mounts, {
          idmapWith: ctx.settings.usernsRootfs?.mode === 'idmap' ? podNamespacePathsOf(sb).user : undefined,
        }),
      );
      cleanup.push('release image volumes', () => imageVolumes.abandon());
      const resolved = resolveHostMounts(imageVolumes.views.length > 0 ? { ...config, mounts: imageVolumes.mounts } : config);
      // Volumes with uid/gid mappings (kubelet, hostUsers=false): idmapped staging mounts that
      // runc binds; detached again once the task exists (container/idmap.ts).
      const idmap = await step('idmap_mounts', () =>
        prepareIdmapMounts({
          state: ctx.settings.state,
          containerId: id,
          mounts: resolved.mounts,
          podNamespaces: sandboxConfig.linux?.securityContext?.namespaceOptions,
          usernsPath: podNamespacePathsOf(sb).user,
          idmapRoots: ctx.idmapRoots,
        }),
      );
      cleanup.push('release idmapped mounts', () => idmap.release());
      resolved.mounts = idmap.mounts;
      const volumes = imageVolumeMounts(imageConfig.Volumes, resolved.mounts, containerRootDir(ctx, id));
      for (const v of volumes) await mkdir(v.hostPath, { recursive: true, mode: 0o755 });
      const userDb = await step('read_image_files', async () => {
        // An image's files never change (the chain id names its content): its user db is read
        // through a mount once, and again only when volumes need seeding from the image.
        const cached = volumes.length === 0 ? ctx.userDbs.get(image.topChainID) : undefined;
        if (cached) return cached;
        const db = await withMountedRootfs(mounts, tmp, async (root) => {
          await copyVolumeContents(root, volumes);
          return readUserDb(root);
        });
        ctx.userDbs.set(image.topChainID, db);
        return db;
      });

      const spec = await step('spec', async (): Promise<Spec> => {
        const handler = ctx.settings.runtimes[handlerName(ctx, sb.runtimeHandler)];
        const generated = containerSpec({
          id,
          sandboxId: sb.id,
          config: resolved,
          sandboxConfig,
          image: imageConfig,
          imageName: imageSpec,
          rootfsPath: 'rootfs',
          podNamespaces: podNamespacePathsOf(sb),
          targetPid: targetPid(ctx, ns, config, sb.id),
          sandboxFiles: sandboxFilesOf(ctx, sb),
          extraMounts: volumes,
          userDb,
          nodeHostname: hostname(),
          statDevice,
          lookupPropagation,
          localhostSeccompProfile: await loadLocalhostSeccomp(config.linux?.securityContext, 'config.linux.security_context', 'container.seccomp_profile'),
          options: {
            restrictOomScoreAdj: ctx.settings.restrictOomScoreAdj,
            podAnnotations: handler?.podAnnotations,
            allowedContainerAnnotations: handler?.containerAnnotations,
            allCapabilities: currentCapabilities(),
          },
        });
        if (cdiDevices.length > 0) applyCdiEdits(generated, cdiDevices, cdiHost);
        return generated;
      });

      const handler = handlerName(ctx, sb.runtimeHandler);
      const logPath = sandboxConfig.logDirectory !== '' && config.logPath !== '' ? join(sandboxConfig.logDirectory, config.logPath) : '';
      const stdio = await step('stdio', () => prepareStdio(ctx, { id, handler, logPath, stdin: config.stdin, stdinOnce: config.stdinOnce }));
      // The runc shim opens the output FIFOs at create: the reader must exist first.
      if (stdio.daemonLog) await startLogForwarder(ctx, ns, id, logPath);

      const { pid } = await step('task_create', () =>
        ctx.tasks.create({
          namespace: ns,
          id,
          spec: spec as unknown as Record<string, unknown>,
          rootfs: mounts,
          runtime: handler,
          groupKey: sb.id,
          stdin: stdio.stdin,
          stdout: stdio.stdout,
          stderr: stdio.stderr,
          terminal: config.tty,
        }),
      );
      cleanup.push('delete task', () => ctx.tasks.delete(ns, id));
      // runc has copied the idmapped binds into the container's mount namespace, and the
      // shim's overlay holds the idmapped layers it was mounted over.
      idmap.release();
      rootfs.release();

      const user = spec.process?.user;
      const rec: ContainerRecord = {
        id,
        sandboxId: sb.id,
        name,
        meta: { name: config.metadata.name, attempt: config.metadata.attempt },
        state: 'created',
        createdAt: nowNanos().toString(),
        pid,
        image: imageSpec,
        imageId: image.id,
        imageRef: image.id,
        config: encodeMessage(ContainerConfigSchema, config),
        labels: { ...config.labels },
        annotations: { ...config.annotations },
        logPath,
        snapshotKey: id,
        resources: config.linux?.resources ? encodeMessage(LinuxContainerResourcesSchema, config.linux.resources) : undefined,
        extra: {
          runtimeHandler: handler,
          imageConfig,
          user: user ? { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids ?? [] } : undefined,
          stdinPath: stdio.stdin,
          daemonLog: stdio.daemonLog,
          ...(imageVolumes.views.length > 0 ? { imageVolumes: imageVolumes.views } : {}),
        },
      };
      // Under the pod's lock: a concurrent Stop/RemovePodSandbox either sees this container or
      // has already made the pod not ready (then this create fails and unwinds).
      await step('record', () =>
        ctx.locks.run(sandboxLockKey(sb.id), async () => {
          const now = ctx.sandboxes.get(ns, sb.id);
          if (!now || now.state !== 'ready')
            throw errors.failedPrecondition('sandbox.not_ready', `pod sandbox ${sb.id} stopped while the container was being created`);
          ctx.containers.put(ns, rec);
        }),
      );
      cleanup.commit();
      imageVolumes.done();
      ctx.events.publish({ kind: 'CREATED', namespace: ns, containerId: id, sandboxId: sb.id, createdAt: nowNanos() });
      return { containerId: id };
    } catch (err) {
      ctx.bookkeepingRetries.add((await cleanup.unwind()).retry, ctx.log);
      throw err;
    }
  };
