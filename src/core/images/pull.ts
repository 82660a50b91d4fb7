/**
 * Pulling one image: resolve → manifest (choosing a platform from an index) → config →
 * layers. Layers download in parallel (bounded) into the content store while the unpacker
 * applies them in order; the layer the unpacker is waiting for is unpacked while it downloads
 * (the content store's pass-through stream), the others are unpacked from the store once the
 * unpacker reaches them.
 */
import { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import { errors } from '../../errors.js';
import type { ContentStore } from '../content/store.js';
import type { Descriptor } from './descriptor.js';
import { parseImageConfig, type ImageConfig } from './image-config.js';
import { MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, parseManifestOrIndex, type Manifest } from './manifest.js';
import { layerCompression } from './mediatypes.js';
import { selectManifest, type PlatformMatcher } from './platform.js';
import type { Credentials, LayerStore, Remote } from './ports.js';
import { referenceString, type Reference } from './reference.js';
import { chainIDs } from '../snapshots/chainid.js';
import { FileSource } from '../unpack/file-source.js';
import { faultPoint } from '../../fault.js';

export type LayerStatus = 'waiting' | 'downloading' | 'downloaded' | 'unpacking' | 'done' | 'exists';

export interface LayerProgress {
  digest: string;
  mediaType: string;
  size: number;
  fetched: number;
  status: LayerStatus;
}

/** Live progress of a pull; emits 'update' (throttled by consumers) and 'end'. */
export class PullProgress extends EventEmitter {
  readonly layers: LayerProgress[] = [];
  readonly startedAt = Date.now();
  imageId = '';
  done = false;

  set(i: number, patch: Partial<LayerProgress>): void {
    Object.assign(this.layers[i]!, patch);
    this.emit('update');
  }
}

export interface PullOutcome {
  /** Root descriptor the reference resolved to (manifest or index). */
  target: Descriptor;
  manifest: Manifest;
  manifestDesc: Descriptor;
  config: ImageConfig;
  configDigest: string;
}

export interface PullDeps {
  content: ContentStore;
  layers: LayerStore;
  remote: Remote;
  platform: PlatformMatcher;
  maxConcurrentDownloads: number;
  /** Digests and chain ids held by pulls in progress (garbage collection keeps them). */
  lease: Set<string>;
}

async function readOrFetchManifest(deps: PullDeps, ref: Reference, desc: Descriptor, creds: Credentials | undefined, signal?: AbortSignal): Promise<Buffer> {
  if (await deps.content.has(desc.digest)) return deps.content.readBlob(desc.digest, MAX_MANIFEST_BYTES);
  const data = await deps.remote.fetchManifest(ref, desc, creds, signal);
  await deps.content.writeBlob(desc, data);
  return data;
}

export async function pullImage(
  deps: PullDeps,
  ref: Reference,
  creds: Credentials | undefined,
  progress: PullProgress,
  signal?: AbortSignal,
): Promise<PullOutcome> {
  const name = referenceString(ref);
  const leased: string[] = [];
  const lease = (k: string) => {
    deps.lease.add(k);
    leased.push(k);
  };
  try {
    await faultPoint?.('PullImage.resolve');
    const target = await deps.remote.resolve(ref, creds, signal);
    lease(target.digest);
    let manifestDesc = target;
    let parsed = parseManifestOrIndex(await readOrFetchManifest(deps, ref, target, creds, signal), target.mediaType, name);
    if (parsed.kind === 'index') {
      manifestDesc = selectManifest(parsed.index.manifests, deps.platform, name);
      lease(manifestDesc.digest);
      parsed = parseManifestOrIndex(
        await readOrFetchManifest(deps, ref, manifestDesc, creds, signal),
        manifestDesc.mediaType,
        `${name} (${manifestDesc.digest})`,
      );
      if (parsed.kind !== 'manifest') throw errors.invalidArgument('image.bad_manifest', `${name}: index entry ${manifestDesc.digest} is not a manifest`);
    }
    const manifest = parsed.manifest;

    const cfgDesc = manifest.config;
    await faultPoint?.('PullImage.config');
    lease(cfgDesc.digest);
    if (cfgDesc.size > MAX_CONFIG_BYTES)
      throw errors.invalidArgument('image.config_too_large', `${name}: config is ${cfgDesc.size} bytes (limit ${MAX_CONFIG_BYTES})`);
    let cfgBytes: Buffer;
    if (await deps.content.has(cfgDesc.digest)) cfgBytes = await deps.content.readBlob(cfgDesc.digest, MAX_CONFIG_BYTES);
    else {
      const s = await deps.remote.fetchBlob(ref, cfgDesc, creds, signal);
      await deps.content.ingest(cfgDesc, s);
      cfgBytes = await deps.content.readBlob(cfgDesc.digest, MAX_CONFIG_BYTES);
    }
    const config = parseImageConfig(cfgBytes);
    const diffIDs = config.rootfs.diff_ids;
    if (diffIDs.length !== manifest.layers.length) {
      throw errors.invalidArgument('image.bad_config', `${name}: manifest has ${manifest.layers.length} layers but config lists ${diffIDs.length} diff_ids`);
    }
    const chain = chainIDs(diffIDs);
    chain.forEach(lease);

    for (const l of manifest.layers) {
      lease(l.digest);
      progress.layers.push({ digest: l.digest, mediaType: l.mediaType, size: l.size, fetched: 0, status: 'waiting' });
    }
    progress.emit('update');

    // Layers already unpacked (a shared base) need neither download nor unpack.
    let first = 0;
    while (first < chain.length && (await deps.layers.has(chain[first]!))) {
      progress.set(first, { status: 'exists', fetched: manifest.layers[first]!.size });
      first++;
    }
    await faultPoint?.('PullImage.layers');
    if (first < chain.length) await fetchAndUnpack(deps, ref, creds, manifest.layers, diffIDs, chain, first, progress, signal);
    return { target, manifest, manifestDesc, config, configDigest: cfgDesc.digest };
  } finally {
    for (const k of leased) deps.lease.delete(k);
  }
}

/** Layers applied at the same time: what the layer store can use (one per unpack worker). */
function unpackSlots(store: LayerStore): number {
  const p = store.parallelism;
  return p !== undefined && Number.isInteger(p) && p > 0 ? p : 1;
}

type LayerSource = { kind: 'stored' } | { kind: 'stream'; stream: Readable; done: Promise<unknown> };

async function fetchAndUnpack(
  deps: PullDeps,
  ref: Reference,
  creds: Credentials | undefined,
  layers: Descriptor[],
  diffIDs: string[],
  chain: string[],
  first: number,
  progress: PullProgress,
  signal?: AbortSignal,
): Promise<void> {
  const ac = new AbortController();
  const onAbort = () => ac.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  // Per layer: undefined = not started; a promise resolving once the blob is stored.
  const stored: Array<Promise<void> | undefined> = new Array(layers.length);
  const claimed = new Array<boolean>(layers.length).fill(false);

  const counting = (i: number, s: Readable): Readable => {
    let n = 0;
    s.on('data', (chunk: Buffer) => {
      n += chunk.length;
      progress.layers[i]!.fetched = n;
      progress.emit('update');
    });
    return s;
  };

  /** Start downloading layer i into the store; with tee, also return the pass-through stream. */
  const startDownload = (i: number, tee: boolean): LayerSource | Promise<void> => {
    const desc = layers[i]!;
    progress.set(i, { status: 'downloading' });
    if (tee) {
      // The unpacker reads the bytes as they are stored.
      let resolveSrc!: (s: LayerSource) => void;
      let rejectSrc!: (e: unknown) => void;
      const src = new Promise<LayerSource>((res, rej) => ((resolveSrc = res), (rejectSrc = rej)));
      stored[i] = (async () => {
        try {
          const body = counting(i, await deps.remote.fetchBlob(ref, desc, creds, ac.signal));
          const h = deps.content.ingestStream(desc, body);
          resolveSrc({ kind: 'stream', stream: h.stream, done: h.done });
          await h.done;
        } catch (err) {
          rejectSrc(err);
          throw err;
        }
      })();
      stored[i]!.catch(() => undefined);
      return src as unknown as Promise<void>;
    }
    const p = (async () => {
      if (await deps.content.has(desc.digest)) return;
      const body = counting(i, await deps.remote.fetchBlob(ref, desc, creds, ac.signal));
      await deps.content.ingest(desc, body);
    })().then(() => progress.set(i, { status: 'downloaded', fetched: desc.size }));
    stored[i] = p;
    p.catch(() => undefined);
    return p;
  };

  // Download pool: takes layers in order, skipping ones the unpacker claimed for streaming.
  let next = first;
  const workers: Promise<void>[] = [];
  const worker = async () => {
    while (!ac.signal.aborted) {
      while (next < layers.length && (claimed[next] || stored[next])) next++;
      if (next >= layers.length) return;
      const i = next++;
      await startDownload(i, false);
    }
  };

  // Layers unpack `slots` at a time, started in chain order (the layer store commits them in
  // order); the others download meanwhile.
  const slots = unpackSlots(deps.layers);
  const running = new Set<Promise<void>>();
  const applies: Promise<void>[] = [];
  try {
    // The unpacker claims the first layer before the pool starts, so it streams.
    for (let i = first; i < layers.length; i++) {
      while (running.size >= slots) await Promise.race(running);
      if (ac.signal.aborted) throw ac.signal.reason ?? errors.canceled('image.pull_canceled', 'pull canceled');
      const desc = layers[i]!;
      let source: LayerSource;
      if (!stored[i] && (await deps.content.has(desc.digest))) {
        stored[i] = Promise.resolve();
        source = { kind: 'stored' };
      } else if (!stored[i]) {
        claimed[i] = true;
        source = (await (startDownload(i, true) as unknown as Promise<LayerSource>)) as LayerSource;
      } else {
        await stored[i];
        source = { kind: 'stored' };
      }
      if (i === first && workers.length === 0) {
        // Other layers download while the first one streams into the unpacker.
        const n = Math.max(0, Math.min(deps.maxConcurrentDownloads - 1, layers.length - first - 1));
        for (let w = 0; w < n; w++) workers.push(worker().catch((err: unknown) => ac.abort(err)));
      }
      progress.set(i, { status: 'unpacking' });
      // A stored blob goes to the unpacker as a file it can read itself (see FileSource).
      const stream = source.kind === 'stream' ? source.stream : new FileSource(deps.content.blobPath(desc.digest));
      const applied = deps.layers
        .apply({
          chainID: chain[i]!,
          parentChainID: i > 0 ? chain[i - 1] : undefined,
          diffID: diffIDs[i]!,
          compression: layerCompression(desc.mediaType),
          stream,
          signal: ac.signal,
        })
        .then(async () => {
          if (source.kind === 'stream') await source.done;
          progress.set(i, { status: 'done', fetched: desc.size });
        });
      applies.push(applied);
      running.add(applied);
      // Handled here; the failure itself surfaces through Promise.race / Promise.all below.
      applied.catch(() => undefined).finally(() => running.delete(applied));
    }
    await Promise.all(applies);
    if (ac.signal.aborted) throw ac.signal.reason ?? errors.canceled('image.pull_canceled', 'pull canceled');
    await Promise.all(workers);
  } catch (err) {
    ac.abort(err);
    await Promise.allSettled([...applies, ...workers, ...stored.filter((p): p is Promise<void> => p !== undefined)]);
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
