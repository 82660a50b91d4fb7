export { ContentStore, type ContentInfo, type IngestHandle, type Usage } from './store.js';
export { parseDigest, isDigest, sha256Digest, type DigestAlgorithm, type ParsedDigest } from './digest.js';
export type { Descriptor, Platform } from './descriptor.js';
