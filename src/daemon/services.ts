/**
 * Builds berthd's services from the config: stores, image service, network, and the CRI
 * handler tables. The only place (with daemon.ts) that wires layers together.
 */
import { access, constants } from 'node:fs/promises';
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

export interface Services {
  images: ImageService;
  imageStore: ImageStore;
  sandboxes: SandboxStore;
  containers: ContainerStore;
  names: NameStore;
  content: ContentStore;
  snapshotter: Snapshotter;
  cni: CniManager;
  status: StatusDeps;
  runtimeHandlers: RuntimeHandlers;
  imageHandlers: ImageHandlers;
  berthHandlers: BerthHandlers;
  rpcObserver?: RpcObserver;
  close(): Promise<void>;
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

  const cni = new CniManager({
    confDir: config.cni.conf_dir,
    binDirs: config.cni.bin_dirs,
    cacheDir: join(config.root, 'cni'),
    logger: log.child({ component: 'cni' }),
  });

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
    status,
    runtimeHandlers: {},
    imageHandlers: {
      pullImage: pullImage(images),
      listImages: listImages(images),
      imageStatus: imageStatus(images),
      removeImage: removeImage(images),
      imageFsInfo: imageFsInfo(images),
    },
    berthHandlers: { pull: berthPull(images) },
    async close() {
      await remote.close();
      snapshotter.close();
    },
  };
}
