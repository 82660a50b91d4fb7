/**
 * Media types of OCI image-spec and Docker image manifest v2 schema 2 content, and predicates
 * over them. Values are the registered strings from the two specs.
 */
import { errors } from '../../errors.js';

export const MediaType = {
  // OCI image spec
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerNonDistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  ociLayerNonDistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  ociLayerNonDistributableZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  // Docker image manifest v2, schema 2
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerLayerZstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  // Docker schema 1 (deprecated; recognised only to reject it clearly)
  dockerSchema1Manifest: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1SignedManifest: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

export type LayerCompression = 'gzip' | 'zstd' | 'none';

const indexTypes = new Set<string>([MediaType.ociIndex, MediaType.dockerManifestList]);
const manifestTypes = new Set<string>([MediaType.ociManifest, MediaType.dockerManifest]);
const configTypes = new Set<string>([MediaType.ociConfig, MediaType.dockerConfig]);

const layerCompressionByType = new Map<string, LayerCompression>([
  [MediaType.ociLayer, 'none'],
  [MediaType.ociLayerGzip, 'gzip'],
  [MediaType.ociLayerZstd, 'zstd'],
  [MediaType.ociLayerNonDistributable, 'none'],
  [MediaType.ociLayerNonDistributableGzip, 'gzip'],
  [MediaType.ociLayerNonDistributableZstd, 'zstd'],
  [MediaType.dockerLayer, 'none'],
  [MediaType.dockerLayerGzip, 'gzip'],
  [MediaType.dockerLayerZstd, 'zstd'],
  [MediaType.dockerForeignLayerGzip, 'gzip'],
]);

const foreignTypes = new Set<string>([
  MediaType.ociLayerNonDistributable,
  MediaType.ociLayerNonDistributableGzip,
  MediaType.ociLayerNonDistributableZstd,
  MediaType.dockerForeignLayerGzip,
]);

/** Strip parameters (`; charset=utf-8`) and case from a Content-Type style value. */
export function baseMediaType(mediaType: string): string {
  const semi = mediaType.indexOf(';');
  return (semi === -1 ? mediaType : mediaType.slice(0, semi)).trim().toLowerCase();
}

/** OCI image index or Docker manifest list. */
export function isIndex(mediaType: string): boolean {
  return indexTypes.has(baseMediaType(mediaType));
}

/** OCI image manifest or Docker schema 2 manifest (single platform). */
export function isManifest(mediaType: string): boolean {
  return manifestTypes.has(baseMediaType(mediaType));
}

/** Anything a registry serves from /manifests/ that berth can use. */
export function isManifestOrIndex(mediaType: string): boolean {
  return isIndex(mediaType) || isManifest(mediaType);
}

export function isSchema1(mediaType: string): boolean {
  const t = baseMediaType(mediaType);
  return t === MediaType.dockerSchema1Manifest || t === MediaType.dockerSchema1SignedManifest;
}

export function isConfig(mediaType: string): boolean {
  return configTypes.has(baseMediaType(mediaType));
}

/** A filesystem layer berth knows how to unpack (tar, optionally gzip or zstd compressed). */
export function isLayer(mediaType: string): boolean {
  return layerCompressionByType.has(baseMediaType(mediaType));
}

/** Foreign / non-distributable layer: registries may not serve it; `urls` may name sources. */
export function isNonDistributable(mediaType: string): boolean {
  return foreignTypes.has(baseMediaType(mediaType));
}

/**
 * Compression of a layer media type. Throws InvalidArgument for anything that is not a known
 * layer type (e.g. encrypted layers, or a config passed by mistake), so callers never guess.
 */
export function layerCompression(mediaType: string): LayerCompression {
  const c = layerCompressionByType.get(baseMediaType(mediaType));
  if (c === undefined) {
    throw errors.invalidArgument('image.unsupported_layer', `unsupported layer media type "${mediaType}"`);
  }
  return c;
}

/** The Accept header value for manifest requests, most specific (index) first. */
export const manifestAccept: string = [MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.dockerManifest].join(', ');
