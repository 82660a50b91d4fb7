/**
 * Builds berthd's services from the config: stores, image service, network, and the CRI
 * handler tables. The only place (with daemon.ts) that wires layers together.
 */
import { access, constants, readFile, rm, writeFile } from 'node:fs/promises';
import { ENV_RUNC_ROOT, ENV_SHIM_STATE_DIR } from '../shim-protocol.js';
import { join } from 'node:path';
import { parseDuration, type Config, type RegistryCredential } from './config.js';
import type { Logger } from '../log.js';
import type { DB } from '../core/metadata/db.js';
import { ImageStore } from '../core/metadata/images.js';
import { ContainerStore, NameStore, SandboxStore } from '../core/metadata/records.js';
import { ContentStore } from '../core/content/store.js';
import { createSnapshotter } from '../core/snapshots/index.js';
import type { Snapshotter } from '../core/snapshots/types.js';
import { SnapshotLayerStore } from '../core/images/layer-store.js';
import { ImageService } from '../core/images/service.js';
import { defaultPlatformMatcher } from '../core/images/platform.js';
import { RegistryClient, RegistryHosts, type Credentials } from '../registry/index.js';
import { CniManager } from '../network/index.js';
import type { BerthHandlers, ImageHandlers, RuntimeHandlers } from '../cri/server/server.js';
import type { StatusDeps } from '../cri/status.js';
import type { RpcObserver } from '../cri/server/instrument.js';
import { pullImage } from '../cri/image/pull.js';
import { listImages, streamImages } from '../cri/image/list.js';
import { imageStatus } from '../cri/image/status.js';
import { removeImage } from '../cri/image/remove.js';
import { imageFsInfo } from '../cri/image/fs-info.js';
import { berthPull } from '../cri/image/berth-pull.js';
import { trimMallocSoon } from './malloc.js';
import { BERTH_VERSION } from '../version.js';
import { TaskManager, type RuntimeHandler } from '../runtime/index.js';
import { StreamingServer, type StreamingLimits } from '../streaming/index.js';
import { ContainerEventBus, newHandlerState, Tracer, type RuntimeContext, type RuntimeSettings } from '../cri/server/runtime-context.js';
import { KeyedLock } from '../keyed-lock.js';
import { systemClock } from '../cri/server/ports.js';
import { hostPods } from '../cri/sandbox/host-pods.js';
import { sandboxHandlers } from '../cri/server/handlers-sandbox.js';
import { containerHandlers } from '../cri/server/handlers-container.js';
import { observeHandlers } from '../cri/server/handlers-observe.js';
import { createStreamingBackend } from '../cri/stream/backend.js';
import { recover } from '../cri/recover.js';
import { watchTaskEvents } from '../cri/task-events.js';
import { berthdMetrics, observePulls, serveMetrics, startMetricsEndpoint, METRICS_ADDRESS_FILE, type MetricsEndpoint } from '../metrics/index.js';
import { metricSources } from '../cri/observe/metrics-sources.js';
import { recordPullSpan, trace } from '../cri/observe/berth-trace.js';
import { probeFeatures } from './features.js';
import { sweepIdmapStaging } from '../cri/container/idmap.js';
import { sweepImageVolumes } from '../cri/container/image-volume.js';
import { CdiRegistry } from '../cdi/index.js';

export interface Services {
  images: ImageService;
  imageStore: ImageStore;
  sandboxes: SandboxStore;
  containers: ContainerStore;
  names: NameStore;
  content: ContentStore;
  snapshotter: Snapshotter;
  cni: CniManager;
  tasks: TaskManager;
  streaming: StreamingServer;
  runtime: RuntimeContext;
  status: StatusDeps;
  runtimeHandlers: RuntimeHandlers;
  imageHandlers: ImageHandlers;
  berthHandlers: BerthHandlers;
  rpcObserver?: RpcObserver;
  /** The config the services run with now (after reloads). */
  config(): Config;
  /**
   * Apply the reloadable keys in `keys` from `next` (see reload.ts). All or nothing: what can
   * fail (a bad mirror endpoint, binding a new metrics or streaming address) is done first,
   * and on failure it throws with the running config untouched. log_level is daemon.ts's
   * (it orders the level change around its report of the reload).
   */
  reconfigure(next: Config, keys: ReadonlySet<string>): Promise<void>;
  close(): Promise<void>;
}

/** Config credentials in the registry client's form. */
export function toCredentials(c: RegistryCredential | undefined): Credentials | undefined {
  if (!c) return undefined;
  return { username: c.username, password: c.password, auth: c.auth, identityToken: c.identity_token };
}

/** The config as `berth info` shows it: credentials replaced by a marker. */
export function redactedConfig(config: Config): Config {
  const c = structuredClone(config);
  for (const host of Object.keys(c.registry.credentials)) c.registry.credentials[host] = { username: '<redacted>' };
  return c;
}

/**
 * The lowest oom_score_adj berthd may give a container. Without CAP_SYS_RESOURCE the kernel
 * refuses values below the current one (runc then dies with "can't get final child's PID from
 * pipe"), so containers are clamped to berthd's own value (containerd: restrict_oom_score_adj).
 */
export async function oomScoreAdjFloor(setting: boolean | 'auto'): Promise<number | undefined> {
  if (setting === false) return undefined;
  const own = Number((await readFile('/proc/self/oom_score_adj', 'utf8')).trim());
  if (setting === true) return own;
  const status = await readFile('/proc/self/status', 'utf8');
  const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? '0';
  const CAP_SYS_RESOURCE = 24n;
  return (BigInt(`0x${capEff}`) >> CAP_SYS_RESOURCE) & 1n ? undefined : own;
}

async function findRunc(): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const p = join(dir, 'runc');
    try {
      await access(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

export async function createServices(config: Config, db: DB, log: Logger): Promise<Services> {
  let current = config;
  const imageStore = new ImageStore(db);
  const sandboxes = new SandboxStore(db);
  const containers = new ContainerStore(db);
  const names = new NameStore(db);

  const content = new ContentStore(join(config.root, 'content'));
  await content.init();
  const { snapshotter, fallbackReason } = await createSnapshotter({ root: join(config.root, 'snapshots'), driver: config.snapshotter });
  if (fallbackReason) log.warn('using the native snapshotter', { reason: fallbackReason });
  const layers = new SnapshotLayerStore(snapshotter, log.child({ component: 'layers' }));
  const interrupted = await layers.cleanupInterrupted();
  if (interrupted) log.info('removed interrupted unpacks', { count: interrupted });

  const remote = new RegistryClient({
    mirrors: config.registry.mirrors,
    credentials: (host) => toCredentials(current.registry.credentials[host]),
    userAgent: `berth/${BERTH_VERSION}`,
    logger: log.child({ component: 'registry' }),
  });
  const images = new ImageService({
    images: imageStore,
    content,
    layers,
    remote,
    platform: defaultPlatformMatcher(),
    maxConcurrentDownloads: config.max_concurrent_downloads,
    pinned: () => [config.sandbox_image],
    log: log.child({ component: 'images' }),
  });

  // Content and layers of pulls that never got their image record (berthd stopped mid-pull,
  // or the machine crashed before the pull's flush) are not trusted: collect them now.
  await images.gc().catch((err: unknown) => log.warn('start-up garbage collection failed; berthd goes on', { error: err }));

  const cni = new CniManager({
    confDir: config.cni.conf_dir,
    binDirs: config.cni.bin_dirs,
    cacheDir: join(config.root, 'cni'),
    pluginTimeoutMs: config.cni.plugin_timeout * 1000,
    logger: log.child({ component: 'cni' }),
  });

  const handlers: Record<string, RuntimeHandler & { podAnnotations?: string[]; containerAnnotations?: string[] }> = {};
  for (const [name, r] of Object.entries(config.runtimes)) {
    handlers[name] = { type: r.type, shim: r.shim, binary: r.binary, podAnnotations: r.pod_annotations, containerAnnotations: r.container_annotations };
  }
  const tasks = new TaskManager({
    stateDir: config.state,
    rootDir: config.root,
    handlers,
    // [shim] group is no longer used: berth-shim is one process per namespace (conmon per container).
    shimEnv: { [ENV_SHIM_STATE_DIR]: join(config.state, 's'), [ENV_RUNC_ROOT]: join(config.state, 'runc') },
    logger: log.child({ component: 'runtime' }),
  });

  const settings: RuntimeSettings = {
    root: config.root,
    state: config.state,
    sandboxImage: config.sandbox_image,
    defaultRuntime: config.default_runtime,
    runtimes: handlers,
    restrictOomScoreAdj: await oomScoreAdjFloor(config.restrict_oom_score_adj),
    netnsDir: join(config.state, 'netns'),
  };
  const cdi = new CdiRegistry(config.cdi.spec_dirs, log.child({ component: 'cdi' }));
  let runtime!: RuntimeContext;
  const streaming = new StreamingServer({
    address: config.streaming.address,
    backend: createStreamingBackend(() => runtime),
    log: log.child({ component: 'streaming' }),
    limits: streamingLimits(config),
  });
  await streaming.start();
  runtime = {
    settings,
    log,
    images,
    sandboxes,
    containers,
    names,
    snapshotter,
    cni,
    tasks,
    streaming,
    events: new ContainerEventBus(),
    tracer: new Tracer(),
    locks: new KeyedLock(),
    cdi,
    pods: hostPods(),
    clock: systemClock,
    ...newHandlerState(snapshotter),
  };
  const runtimeHandlers: RuntimeHandlers = { ...sandboxHandlers(runtime), ...containerHandlers(runtime), ...observeHandlers(runtime) };
  // Metrics: RPC latency via the CRI server's observer, pulls via the image service's diagnostics channel, gauges at scrape time.
  const metrics = berthdMetrics(metricSources(runtime));
  const stopObservingPulls = observePulls(images, (o) => {
    metrics.pulled(o.ok, o.bytes, o.durationMs / 1000);
    recordPullSpan(runtime.tracer, o.ref, o.startMs, o.durationMs, { bytes: o.bytes }, o.error);
    trimMallocSoon();
  });
  let metricsEndpoint = await startMetricsEndpoint(metrics.registry, config.metrics.address, config.state, log.child({ component: 'metrics' }));
  // No CreateContainer runs yet: idmapped staging mounts left by a berthd that died mid-create go.
  const staleIdmap = sweepIdmapStaging(config.state);
  if (staleIdmap) log.info('detached leftover idmapped staging mounts', { count: staleIdmap });
  // Read the CDI spec files once now (the log names files that cannot be used); never fatal.
  await cdi
    .summary()
    .then((cdi) =>
      log.info('CDI spec directories read', {
        dirs: cdi.dirs,
        specs: cdi.specs.length,
        devices: cdi.specs.reduce((n, s) => n + s.devices.length, 0),
        unusable: cdi.errors.length,
      }),
    )
    .catch((err: unknown) => log.warn('reading the CDI spec directories failed; berthd goes on', { error: err }));
  watchTaskEvents(runtime);
  await recover(runtime, await tasks.init());
  // Image volume views no container record names any more (a berthd that died mid-create or
  // mid-remove) are unmounted and removed; never fatal.
  await sweepImageVolumes(runtime)
    .then((n) => n > 0 && log.info('removed unused image volume views', { count: n }))
    .catch((err: unknown) => log.warn('sweeping image volume views failed; berthd goes on', { error: err }));

  const features = await probeFeatures({
    handlers: Object.fromEntries(Object.entries(config.runtimes).map(([name, r]) => [name, { binary: r.binary }])),
    stateDir: config.state,
    log: log.child({ component: 'features' }),
    layersDir: snapshotter.driver === 'overlayfs' ? join(snapshotter.root, 'snapshots') : undefined,
    usernsRootfs: config.userns_rootfs,
  });
  settings.usernsRootfs = { mode: features.usernsRootfs.mode, fallback: features.usernsRootfs.fallback };
  settings.recursiveReadOnlyMounts = Object.fromEntries(Object.entries(features.handlers).map(([n, f]) => [n, f.recursiveReadOnlyMounts]));
  const status: StatusDeps = {
    features: { ...features, defaultHandler: config.default_runtime },
    async runtimeCondition() {
      const runc = await findRunc();
      return runc ? { ready: true } : { ready: false, reason: 'RuntimeNotReady', message: 'runc binary not found on PATH' };
    },
    async networkCondition() {
      const s = await cni.status();
      return { ready: s.ready, reason: s.reason, message: s.message };
    },
    async info() {
      return {
        config: JSON.stringify(redactedConfig(current)),
        snapshotter: JSON.stringify({ driver: snapshotter.driver, root: snapshotter.root, fallbackReason }),
        features: JSON.stringify(features),
        cdi: JSON.stringify(await cdi.summary()),
      };
    },
  };

  return {
    images,
    imageStore,
    sandboxes,
    containers,
    names,
    content,
    snapshotter,
    cni,
    tasks,
    streaming,
    runtime,
    status,
    runtimeHandlers,
    imageHandlers: {
      pullImage: pullImage(images),
      listImages: listImages(images),
      streamImages: streamImages(images),
      imageStatus: imageStatus(images),
      removeImage: removeImage(images, { containers: (ns) => containers.list(ns), creating: () => runtime.imageVolumes.paths() }),
      imageFsInfo: imageFsInfo(images),
    },
    berthHandlers: { pull: berthPull(images), trace: trace(runtime) },
    rpcObserver: metrics,
    config: () => current,
    async reconfigure(next, keys) {
      // 1. What can fail, with nothing changed yet.
      if (keys.has('registry.mirrors')) new RegistryHosts(next.registry.mirrors);
      let newMetrics: MetricsEndpoint | undefined;
      if (keys.has('metrics.address') && next.metrics.address) {
        try {
          newMetrics = await serveMetrics(metrics.registry, next.metrics.address);
        } catch (err) {
          throw new Error(`metrics.address ${JSON.stringify(next.metrics.address)}: ${(err as Error).message}`, { cause: err });
        }
      }
      if (keys.has('streaming.address')) {
        try {
          await streaming.rebind(next.streaming.address);
        } catch (err) {
          await newMetrics?.close();
          throw new Error(`streaming.address ${JSON.stringify(next.streaming.address)}: ${(err as Error).message}`, { cause: err });
        }
      }
      // 2. The rest cannot fail.
      if ([...keys].some((k) => k.startsWith('streaming.') && k !== 'streaming.address')) streaming.setLimits(streamingLimits(next));
      if (keys.has('registry.mirrors')) remote.setMirrors(next.registry.mirrors);
      if (keys.has('cdi.spec_dirs')) cdi.setDirs(next.cdi.spec_dirs);
      if (keys.has('cni.conf_dir') || keys.has('cni.bin_dirs')) cni.reconfigure({ confDir: next.cni.conf_dir, binDirs: next.cni.bin_dirs });
      if (keys.has('metrics.address')) {
        const old = metricsEndpoint;
        metricsEndpoint = newMetrics;
        await old?.close();
        const addrFile = join(config.state, METRICS_ADDRESS_FILE);
        if (newMetrics) {
          await writeFile(addrFile, `${newMetrics.address}\n`);
          log.info('metrics endpoint serving', { component: 'metrics', address: newMetrics.address, path: '/metrics' });
        } else {
          await rm(addrFile, { force: true });
          log.info('metrics endpoint turned off', { component: 'metrics' });
        }
      }
      current = next;
    },
    async close() {
      stopObservingPulls();
      await metricsEndpoint?.close();
      await streaming.stop();
      await tasks.close();
      await runtime.netnsDialer.close();
      // Its timer would retry against a closed database; what is pending is recovery's at the next start.
      runtime.bookkeepingRetries.close();
      await remote.close();
      await layers.pool.close();
      snapshotter.close();
    },
  };
}

/** The streaming server's limits from the [streaming] section. */
function streamingLimits(config: Config): StreamingLimits {
  return {
    idleTimeoutMs: parseDuration(config.streaming.idle_timeout),
    streamCreationTimeoutMs: parseDuration(config.streaming.stream_creation_timeout),
    maxConnections: config.streaming.max_connections,
    maxStreamsPerConnection: config.streaming.max_streams_per_connection,
  };
}
