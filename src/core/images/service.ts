/**
 * The image service: what the CRI ImageService (and later CreateContainer) asks of images.
 * Images are grouped as the CRI sees them: one image per config digest (its id), carrying
 * every name (repo tag / repo digest) recorded for it in the metadata store.
 */
import diagnostics_channel from 'node:diagnostics_channel';
import { errors } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { ContentStore } from '../content/store.js';
import type { ImageRecord, ImageStore } from '../metadata/images.js';
import { chainIDs } from '../snapshots/chainid.js';
import type { Descriptor } from './descriptor.js';
import { imageUser, parseImageConfig, type ImageConfig } from './image-config.js';
import { MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, parseManifestOrIndex, type Manifest } from './manifest.js';
import type { PlatformMatcher } from './platform.js';
import type { Credentials, LayerStore, Remote } from './ports.js';
import { PullProgress, pullImage } from './pull.js';
import { parseImageSpec, parseReference, referenceString, repository, withDigest, type Reference } from './reference.js';
import { faultPoint } from '../../fault.js';

/** What `pullChannel` publishes when a pull() call settles (one per call, joined pulls too). */
export interface PullObservation {
  /** The service that pulled (subscribers of one daemon filter on it). */
  service: ImageService;
  ref: string;
  ok: boolean;
  /** Image size (manifest + config + compressed layers) on success, else 0. */
  bytes: number;
  /** Unix milliseconds (fractional). */
  startMs: number;
  durationMs: number;
  error?: string;
}

/**
 * Pull observations (metrics, traces) go out on a diagnostics channel: observers subscribe
 * without wrapping the service, and nothing is published when nobody listens.
 */
export const pullChannel = diagnostics_channel.channel('berth:image:pull');

/** An image as the CRI sees it. */
export interface Image {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  /** Bytes: manifest + config + compressed layers. */
  size: number;
  uid?: number;
  username?: string;
  pinned: boolean;
  config: ImageConfig;
  manifest: Manifest;
  /** Chain id of the top layer (the snapshot a container rootfs stacks on). */
  topChainID: string;
  chainIDs: string[];
  records: ImageRecord[];
}

export interface ImageServiceOptions {
  images: ImageStore;
  content: ContentStore;
  layers: LayerStore;
  remote: Remote;
  platform: PlatformMatcher;
  maxConcurrentDownloads: number;
  /** References that are pinned (the sandbox image). */
  pinned: () => string[];
  /** Chain ids still needed by others (e.g. container snapshots' parents). */
  extraRoots?: () => Set<string>;
  log: Logger;
}

interface Parsed {
  manifest: Manifest;
  config: ImageConfig;
  size: number;
}

export class ImageService {
  /** Pulls in flight, keyed by namespace + normalized reference: concurrent callers share one. */
  private readonly inflight = new Map<string, { progress: PullProgress; result: Promise<Image> }>();
  /** Content and chain ids held by pulls in progress. */
  private readonly lease = new Set<string>();
  /** Parsed manifest+config by target digest (content is immutable). */
  private readonly cache = new Map<string, Parsed>();
  private gcRunning: Promise<void> | undefined;
  private gcNext: Promise<void> | undefined;
  /**
   * Assembled images by namespace + id, and each namespace's list, valid while the image
   * records (the store's generation) and the pinned names stay what they were: ImageStatus,
   * ListImages and every ContainerStatus read them, and assembling cost SQL reads, reference
   * parsing and chain-id hashing per image per call. Cached images are shared: read-only.
   */
  private readonly assembled = new Map<string, Image | undefined>();
  private readonly listed = new Map<string, Image[]>();
  /** find() answers by namespace + spec, under the same key. */
  private readonly found = new Map<string, Image | undefined>();
  private assembledKey = '';

  constructor(private readonly o: ImageServiceOptions) {}

  /** What answers derived from images depend on: changes when the records or pinned names do. */
  answersKey(): string {
    this.checkAssembled();
    return this.assembledKey;
  }

  /** Drop the assembled-image caches when the records or the pinned names changed. */
  private checkAssembled(): void {
    const key = `${this.o.images.generation}\u0000${this.o.pinned().join('\u0000')}`;
    if (key === this.assembledKey) return;
    this.assembled.clear();
    this.listed.clear();
    this.found.clear();
    this.assembledKey = key;
  }

  /**
   * Pull `refText` (CRI image spec) into namespace `ns`; returns the image. Every call, also one
   * that joins a pull in progress or is refused at once, is published on `pullChannel`.
   */
  pull(ns: string, refText: string, creds?: Credentials, onProgress?: (p: PullProgress) => void, signal?: AbortSignal): Promise<Image> {
    const startMs = performance.timeOrigin + performance.now();
    const t0 = performance.now();
    const publish = (ok: boolean, bytes: number, error?: string): void => {
      if (!pullChannel.hasSubscribers) return;
      const o: PullObservation = {
        service: this,
        ref: refText,
        ok,
        bytes,
        startMs,
        durationMs: performance.now() - t0,
        ...(error !== undefined ? { error } : {}),
      };
      pullChannel.publish(o);
    };
    let result: Promise<Image>;
    try {
      result = this.pullShared(ns, refText, creds, onProgress, signal);
    } catch (err) {
      result = Promise.reject(err);
    }
    return result.then(
      (img) => {
        publish(true, img.size);
        return img;
      },
      (err: unknown) => {
        publish(false, 0, (err as Error).message);
        throw err;
      },
    );
  }

  private pullShared(ns: string, refText: string, creds?: Credentials, onProgress?: (p: PullProgress) => void, signal?: AbortSignal): Promise<Image> {
    if (!refText) throw errors.invalidArgument('image.empty_reference', 'image.image: an image reference is required');
    const ref = parseReference(refText);
    const key = `${ns}\u0000${referenceString(ref)}`;
    let entry = this.inflight.get(key);
    if (!entry) {
      const progress = new PullProgress();
      const result = this.doPull(ns, ref, creds, progress, signal).finally(() => {
        progress.done = true;
        progress.emit('end');
        this.inflight.delete(key);
      });
      entry = { progress, result };
      this.inflight.set(key, entry);
    }
    if (onProgress) onProgress(entry.progress);
    return entry.result;
  }

  private async doPull(ns: string, ref: Reference, creds: Credentials | undefined, progress: PullProgress, signal?: AbortSignal): Promise<Image> {
    const started = Date.now();
    // A collection running now (after a RemoveImage) read its roots before this pull leased
    // anything: the pull would find layers it is about to prune. Start after it.
    await this.gcSettled();
    const out = await pullImage(
      {
        content: this.o.content,
        layers: this.o.layers,
        remote: this.o.remote,
        platform: this.o.platform,
        maxConcurrentDownloads: this.o.maxConcurrentDownloads,
        lease: this.lease,
      },
      ref,
      creds,
      progress,
      signal,
    );
    // Durability point: blobs and layers reach the disk before a record refers to them.
    await faultPoint?.('PullImage.sync');
    await this.o.content.sync();
    await faultPoint?.('PullImage.record');
    const names: string[] = [];
    if (ref.tag !== undefined) names.push(`${repository(ref)}:${ref.tag}`);
    names.push(referenceString(withDigest(ref, out.target.digest)));
    const target = { mediaType: out.target.mediaType, digest: out.target.digest, size: out.target.size };
    this.o.images.put(names.map((name) => ({ namespace: ns, name, target, configDigest: out.configDigest, labels: {} })));
    progress.imageId = out.configDigest;
    this.o.log.info('image pulled', { image: referenceString(ref), id: out.configDigest, ms: Date.now() - started });
    const img = await this.get(ns, out.configDigest);
    if (!img) throw errors.internal('image.vanished', `image ${out.configDigest} vanished right after its pull`);
    return img;
  }

  /** Progress of a pull in flight for this reference, if any. */
  progressOf(ns: string, refText: string): PullProgress | undefined {
    return this.inflight.get(`${ns}\u0000${referenceString(parseReference(refText))}`)?.progress;
  }

  private async parsed(target: ImageRecord['target'], configDigest: string): Promise<Parsed> {
    const hit = this.cache.get(target.digest);
    if (hit) return hit;
    const data = await this.o.content.readBlob(target.digest, MAX_MANIFEST_BYTES);
    let doc = parseManifestOrIndex(data, target.mediaType, target.digest);
    let manifestSize = target.size;
    if (doc.kind === 'index') {
      // The pulled child is the one whose config we recorded; find it among stored children.
      let found: { m: Manifest; size: number } | undefined;
      for (const d of doc.index.manifests) {
        if (!(await this.o.content.has(d.digest))) continue;
        const child = parseManifestOrIndex(await this.o.content.readBlob(d.digest, MAX_MANIFEST_BYTES), d.mediaType, d.digest);
        if (child.kind === 'manifest' && child.manifest.config.digest === configDigest) {
          found = { m: child.manifest, size: d.size };
          break;
        }
      }
      if (!found) throw errors.notFound('image.manifest_missing', `no stored manifest of ${target.digest} has config ${configDigest}`);
      doc = { kind: 'manifest', manifest: found.m };
      manifestSize = found.size;
    }
    const manifest = doc.manifest;
    const config = parseImageConfig(await this.o.content.readBlob(configDigest, MAX_CONFIG_BYTES));
    const size = manifestSize + manifest.config.size + manifest.layers.reduce((a, l) => a + l.size, 0);
    const p = { manifest, config, size };
    this.cache.set(target.digest, p);
    return p;
  }

  private async assemble(ns: string, configDigest: string, records: ImageRecord[]): Promise<Image | undefined> {
    if (records.length === 0) return undefined;
    const p = await this.parsed(records[0]!.target, configDigest);
    const pinnedNames = new Set(
      this.o
        .pinned()
        .map((r) => safeRefString(r))
        .filter((x): x is string => !!x),
    );
    const repoTags = records.filter((r) => !r.name.includes('@')).map((r) => r.name);
    const repoDigests = records.filter((r) => r.name.includes('@')).map((r) => r.name);
    const chain = chainIDs(p.config.rootfs.diff_ids);
    return {
      id: configDigest,
      repoTags,
      repoDigests,
      size: p.size,
      ...imageUser(p.config.config.User),
      pinned: records.some((r) => pinnedNames.has(r.name)),
      config: p.config,
      manifest: p.manifest,
      topChainID: chain[chain.length - 1] ?? '',
      chainIDs: chain,
      records,
    };
  }

  /** By config digest. */
  async get(ns: string, id: string): Promise<Image | undefined> {
    this.checkAssembled();
    const key = `${ns}\u0000${id}`;
    if (this.assembled.has(key)) return this.assembled.get(key);
    const gen = this.assembledKey;
    const img = await this.assemble(ns, id, this.o.images.byConfig(ns, id));
    if (gen === this.assembledKey && (img !== undefined || this.assembled.size < 4096)) this.assembled.set(key, img);
    return img;
  }

  /**
   * Find an image by what a CRI ImageSpec may hold: full id, unique id prefix (≥ 3 hex), a
   * reference by tag or by digest (familiar or full). undefined when absent.
   */
  async find(ns: string, spec: string): Promise<Image | undefined> {
    if (!spec) throw errors.invalidArgument('image.empty_reference', 'image: an image reference or id is required');
    this.checkAssembled();
    const key = `${ns}\u0000${spec}`;
    if (this.found.has(key)) return this.found.get(key);
    const gen = this.assembledKey;
    const img = await this.findUncached(ns, spec);
    // Bounded: specs are what clients send (a flood of distinct misses must not grow it).
    if (gen === this.assembledKey && this.found.size < 4096) this.found.set(key, img);
    return img;
  }

  private async findUncached(ns: string, spec: string): Promise<Image | undefined> {
    const hexPrefix = /^(sha256:)?([a-f0-9]{3,64})$/.exec(spec);
    if (hexPrefix) {
      const s = parseImageSpec(spec.length === 64 || spec.startsWith('sha256:') ? spec : spec);
      if (s.kind === 'id') {
        const img = await this.get(ns, s.id);
        if (img) return img;
      }
      if (hexPrefix[2]!.length < 64) {
        const ids = this.o.images.configsWithPrefix(ns, `sha256:${hexPrefix[2]}`);
        if (ids.length === 1) return this.get(ns, ids[0]!);
        if (ids.length > 1) throw errors.invalidArgument('image.ambiguous_id', `image id prefix ${spec} matches ${ids.length} images`);
      }
    }
    let ref: Reference;
    try {
      ref = parseReference(spec);
    } catch (err) {
      if (hexPrefix) return undefined;
      throw err;
    }
    let rec = this.o.images.get(ns, referenceString(ref));
    if (!rec && ref.tag !== undefined && ref.digest !== undefined) rec = this.o.images.get(ns, referenceString({ ...ref, tag: undefined }));
    if (!rec) return undefined;
    return this.get(ns, rec.configDigest);
  }

  /** All images of a namespace, grouped by id. */
  async list(ns: string): Promise<Image[]> {
    this.checkAssembled();
    const cached = this.listed.get(ns);
    if (cached) return cached;
    const gen = this.assembledKey;
    let complete = true;
    const byId = new Map<string, ImageRecord[]>();
    for (const r of this.o.images.list(ns)) {
      const a = byId.get(r.configDigest);
      if (a) a.push(r);
      else byId.set(r.configDigest, [r]);
    }
    const out: Image[] = [];
    for (const [id, recs] of byId) {
      try {
        const img = await this.assemble(ns, id, recs);
        if (img) out.push(img);
      } catch (err) {
        complete = false;
        this.o.log.warn('image unreadable, skipped', { id, error: err });
      }
    }
    if (complete && gen === this.assembledKey) this.listed.set(ns, out);
    return out;
  }

  /**
   * Remove an image with every name it has: by id, digest or any one tag (the CRI contract:
   * removing by one tag removes all its tags, in every repository). Idempotent: an absent
   * image is not an error.
   */
  async remove(ns: string, spec: string): Promise<void> {
    const img = await this.find(ns, spec);
    if (!img) return;
    // The durable point: the records are gone (one transaction). Blobs and layers nothing
    // reaches any more are collected after the caller's reply; if berthd dies first, the
    // start-up collection removes them (nothing refers to them).
    this.o.images.delete(
      ns,
      img.records.map((r) => r.name),
    );
    void this.gc().catch((err: unknown) => this.o.log.warn('garbage collection after a remove failed; the next one retries', { error: err }));
  }

  /**
   * Garbage collection: keep every blob and unpacked layer reachable from any image record
   * (all namespaces), from pulls in progress, and from extraRoots; remove the rest. A call
   * while a pass runs gets one more pass after it (the running one read its roots before the
   * caller's change).
   */
  gc(): Promise<void> {
    if (!this.gcRunning) {
      this.gcRunning = this.doGc().finally(() => (this.gcRunning = undefined));
      return this.gcRunning;
    }
    this.gcNext ??= this.gcRunning
      .catch(() => undefined)
      .then(() => {
        this.gcNext = undefined;
        return this.gc();
      });
    return this.gcNext;
  }

  /** Resolves once no collection runs or is queued. */
  async gcSettled(): Promise<void> {
    while (this.gcRunning || this.gcNext) await (this.gcNext ?? this.gcRunning)!.catch(() => undefined);
  }

  private async doGc(): Promise<void> {
    const liveContent = new Set<string>(this.lease);
    const liveChains = new Set<string>(this.lease);
    for (const id of this.o.extraRoots?.() ?? []) liveChains.add(id);
    const visit = async (d: Descriptor | ImageRecord['target'], depth: number): Promise<void> => {
      liveContent.add(d.digest);
      if (depth > 2 || !(await this.o.content.has(d.digest))) return;
      let doc;
      try {
        doc = parseManifestOrIndex(await this.o.content.readBlob(d.digest, MAX_MANIFEST_BYTES), d.mediaType, d.digest);
      } catch {
        return;
      }
      if (doc.kind === 'index') {
        for (const m of doc.index.manifests) await visit(m, depth + 1);
        return;
      }
      liveContent.add(doc.manifest.config.digest);
      for (const l of doc.manifest.layers) liveContent.add(l.digest);
      try {
        const cfg = parseImageConfig(await this.o.content.readBlob(doc.manifest.config.digest, MAX_CONFIG_BYTES));
        for (const c of chainIDs(cfg.rootfs.diff_ids)) liveChains.add(c);
      } catch {
        /* config absent: its layers cannot be named either */
      }
    };
    for (const r of this.o.images.all()) await visit(r.target, 0);
    const prunedLayers = await this.o.layers.prune(liveChains);
    let blobs = 0;
    for (const info of await this.o.content.list()) {
      if (!liveContent.has(info.digest) && !this.lease.has(info.digest)) {
        await this.o.content.delete(info.digest);
        this.cache.delete(info.digest);
        blobs++;
      }
    }
    if (prunedLayers.length || blobs) this.o.log.info('garbage collected', { layers: prunedLayers.length, blobs });
  }

  async fsInfo(): Promise<{ bytes: number; inodes: number; mountpoint: string }> {
    return this.o.layers.usage();
  }
}

function safeParse(s: string): Reference | undefined {
  try {
    return parseReference(s);
  } catch {
    return undefined;
  }
}

function safeRefString(s: string): string | undefined {
  const r = safeParse(s);
  return r && referenceString(r);
}
