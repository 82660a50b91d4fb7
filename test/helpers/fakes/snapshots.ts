/**
 * A snapshotter in memory (SnapshotPort) and an image service that knows the sandbox image
 * (ImagePort): enough for the pause's rootfs and CreateContainer's lookups.
 */
import { errors } from '../../../src/errors.js';
import type { ImagePort, SnapshotPort } from '../../../src/cri/server/ports.js';
import type { Image } from '../../../src/core/images/service.js';
import type { Mount, SnapshotInfo } from '../../../src/core/snapshots/types.js';
import type { Faults } from './faults.js';

export class FakeSnapshots implements SnapshotPort {
  readonly driver = 'native' as const;
  readonly root = '/nonexistent/fake-snapshots';
  readonly snapshots = new Map<string, { parent?: string; labels: Record<string, string> }>();
  constructor(private readonly faults: Faults) {}

  async prepare(key: string, parent?: string, labels: Record<string, string> = {}): Promise<Mount[]> {
    await this.faults.hit('snapshots.prepare');
    if (this.snapshots.has(key)) throw errors.alreadyExists('snapshot.exists', `snapshot ${key} exists`);
    this.snapshots.set(key, { parent, labels });
    return [{ type: 'bind', source: `${this.root}/${key}`, options: ['rbind', 'rw'] }];
  }

  async stat(key: string): Promise<SnapshotInfo> {
    const s = this.snapshots.get(key);
    if (!s) throw errors.notFound('snapshot.not_found', `snapshot ${key} not found`);
    return { key, parent: s.parent, kind: 'active', labels: s.labels, created: new Date(), updated: new Date() };
  }

  async remove(key: string): Promise<void> {
    await this.faults.hit('snapshots.remove');
    if (!this.snapshots.delete(key)) throw errors.notFound('snapshot.not_found', `snapshot ${key} not found`);
  }

  async list(): Promise<SnapshotInfo[]> {
    return Promise.all([...this.snapshots.keys()].map((k) => this.stat(k)));
  }

  private unsupported(what: string): never {
    throw errors.unimplemented('fake.unsupported', `the fake snapshotter does not do ${what}`);
  }
  async view(): Promise<Mount[]> {
    this.unsupported('view');
  }
  async commit(): Promise<void> {
    this.unsupported('commit');
  }
  async mounts(): Promise<Mount[]> {
    this.unsupported('mounts');
  }
  async usage(): Promise<never> {
    this.unsupported('usage');
  }
  async totalUsage(): Promise<never> {
    this.unsupported('totalUsage');
  }
  async applyTarget(): Promise<never> {
    this.unsupported('applyTarget');
  }
  close(): void {}
}

export class FakeImages implements ImagePort {
  readonly images = new Map<string, Image>();
  constructor(private readonly faults: Faults) {}

  /** An image named `ref` with one layer chain. */
  add(ref: string): Image {
    const img = {
      id: `sha256:${Buffer.from(ref).toString('hex').padEnd(64, '0').slice(0, 64)}`,
      repoTags: [ref],
      repoDigests: [],
      size: 1,
      pinned: false,
      config: { config: { Entrypoint: ['/pause'] } },
      manifest: {},
      topChainID: `sha256:${'c'.repeat(64)}`,
    } as unknown as Image;
    this.images.set(ref, img);
    return img;
  }

  async find(_ns: string, ref: string): Promise<Image | undefined> {
    return this.images.get(ref);
  }

  async get(_ns: string, id: string): Promise<Image | undefined> {
    return [...this.images.values()].find((i) => i.id === id);
  }

  async pull(_ns: string, ref: string): Promise<Image> {
    await this.faults.hit('images.pull');
    return this.images.get(ref) ?? this.add(ref);
  }

  async gc(): Promise<void> {}
}
