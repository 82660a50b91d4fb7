/**
 * What the image service needs from the layers around it. core/ defines these; daemon/ plugs
 * in the registry client (transport) and the snapshot-backed layer store.
 */
import type { Readable } from 'node:stream';
import type { Descriptor } from './descriptor.js';
import type { LayerCompression } from './mediatypes.js';
import type { Reference } from './reference.js';

/** Registry credentials, shaped like the CRI AuthConfig. */
export interface Credentials {
  username?: string;
  password?: string;
  /** base64("user:password") */
  auth?: string;
  serverAddress?: string;
  identityToken?: string;
  registryToken?: string;
}

/** A source of images: a registry (with mirrors). */
export interface Remote {
  /** The root descriptor (manifest or index) a reference names. */
  resolve(ref: Reference, creds?: Credentials, signal?: AbortSignal): Promise<Descriptor>;
  /** Manifest or index bytes, size-capped and digest-verified. */
  fetchManifest(ref: Reference, desc: Descriptor, creds?: Credentials, signal?: AbortSignal): Promise<Buffer>;
  /** A blob's bytes as a stream (exactly desc.size bytes or an error). */
  fetchBlob(ref: Reference, desc: Descriptor, creds?: Credentials, signal?: AbortSignal): Promise<Readable>;
}

/** Unpacked layers, keyed by chain id (OCI image spec). */
export interface LayerStore {
  has(chainID: string): Promise<boolean>;
  /**
   * Decompress and apply a layer on top of `parentChainID`, check the uncompressed digest
   * against `diffID`, and only then make it visible as `chainID`. Idempotent per chain id.
   */
  apply(args: {
    chainID: string;
    parentChainID?: string;
    diffID: string;
    compression: LayerCompression;
    stream: Readable;
    signal?: AbortSignal;
  }): Promise<void>;
  /** Remove unpacked layers whose chain id is not in `keep` (leaves before parents). */
  prune(keep: Set<string>): Promise<string[]>;
  usage(): Promise<{ bytes: number; inodes: number; mountpoint: string }>;
  /** How many layers it can apply at the same time (unpack workers); 1 when absent. */
  readonly parallelism?: number;
}
