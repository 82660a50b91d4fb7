/**
 * Builds berthd's services from the config: stores, image service, network, and the CRI
 * handler tables. The only place (with daemon.ts) that wires layers together.
 */
import { access, constants, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from './config.js';
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
import { RegistryClient } from '../registry/index.js';
import { CniManager } from '../network/index.js';
import type { BerthHandlers, ImageHandlers, RuntimeHandlers } from '../cri/server.js';
import type { StatusDeps } from '../cri/status.js';
import type { RpcObserver } from '../cri/instrument.js';
import { pullImage } from '../cri/image-pull.js';
import { listImages } from '../cri/image-list.js';
import { imageStatus } from '../cri/image-status.js';
import { removeImage } from '../cri/image-remove.js';
import { imageFsInfo } from '../cri/image-fs-info.js';
import { berthPull } from '../cri/berth-pull.js';
import { BERTH_VERSION } from '../version.js';
import { TaskManager, type RuntimeHandler } from '../runtime/index.js';
import { StreamingServer } from '../streaming/index.js';
import { ContainerEventBus, KeyedLock, Tracer, type RuntimeContext, type RuntimeSettings } from '../cri/runtime-context.js';
import { sandboxHandlers } from '../cri/runtime-handlers-sandbox.js';
import { containerHandlers } from '../cri/runtime-handlers-container.js';
import { observeHandlers } from '../cri/runtime-handlers-observe.js';
import { createStreamingBackend } from '../cri/streaming-backend.js';
import { recover } from '../cri/recover.js';
import { watchTasks } from '../cri/task-events.js';
import { berthdMetrics, observePulls, startMetricsEndpoint } from '../metrics/index.js';
import { metricSources } from '../cri/metrics-sources.js';
import { recordPullSpan, trace } from '../cri/berth-trace.js';

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
  close(): Promise<void>;
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
    grouping: config.shim.group,
    shimEnv: { BERTH_SHIM_STATE_DIR: join(config.state, 's'), BERTH_RUNC_ROOT: join(config.state, 'runc') },
    // Two warm shims: pods created back to back (kubelet starting a node's pods) each find one
    // ready instead of every other pod waiting ~250 ms for a cold Node start.
    warm: { namespaces: ['k8s.io'], size: 2, runtime: config.default_runtime },
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
  let runtime!: RuntimeContext;
  const streaming = new StreamingServer({ address: config.streaming.address, backend: createStreamingBackend(() => runtime), log: log.child({ component: 'streaming' }) });
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
  };
  const runtimeHandlers: RuntimeHandlers = { ...sandboxHandlers(runtime), ...containerHandlers(runtime), ...observeHandlers(runtime) };
  // Metrics: RPC latency via the CRI server's observer, pulls via the image service, gauges at scrape time.
  const metrics = berthdMetrics(metricSources(runtime));
  observePulls(images, (o) => {
    metrics.pulled(o.ok, o.bytes, o.durationMs / 1000);
    recordPullSpan(runtime.tracer, o.ref, o.startMs, o.durationMs, { bytes: o.bytes }, o.error);
  });
  const metricsEndpoint = await startMetricsEndpoint(metrics.registry, config.metrics.address, config.state, log.child({ component: 'metrics' }));
  watchTasks(runtime);
  await recover(runtime, await tasks.init());

  const status: StatusDeps = {
    async runtimeCondition() {
      const runc = await findRunc();
      return runc ? { ready: true } : { ready: false, reason: 'RuntimeNotReady', message: 'runc binary not found on PATH' };
    },
    async networkCondition() {
      const s = await cni.status();
      return { ready: s.ready, reason: s.reason, message: s.message };
    },
    async info() {
      return { config: JSON.stringify(config), snapshotter: JSON.stringify({ driver: snapshotter.driver, root: snapshotter.root, fallbackReason }) };
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
      imageStatus: imageStatus(images),
      removeImage: removeImage(images),
      imageFsInfo: imageFsInfo(images),
    },
    berthHandlers: { pull: berthPull(images), trace: trace(runtime) },
    rpcObserver: metrics,
    async close() {
      await metricsEndpoint?.close();
      await streaming.stop();
      await tasks.close();
      await remote.close();
      await layers.pool.close();
      snapshotter.close();
    },
  };
}
