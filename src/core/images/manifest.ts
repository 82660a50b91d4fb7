/**
 * Parsing of manifests and indexes (OCI and Docker schema 2). Untrusted input: the caller caps
 * the size before it gets here; every descriptor is checked (digest form, size a safe
 * non-negative integer, media type a string).
 */
import { errors } from '../../errors.js';
import { isValidDigest, type Descriptor } from './descriptor.js';
import { isIndex, isManifest, isSchema1, MediaType } from './mediatypes.js';

export interface Manifest {
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface Index {
  mediaType: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** Limits on what berth reads into memory before parsing. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;
const MAX_ENTRIES = 4096;

function bad(what: string, msg: string): Error {
  return errors.invalidArgument('image.bad_manifest', `${what}: ${msg}`);
}

/**
 * A descriptor's platform: an object whose architecture and os are strings (platform matching
 * lowercases them: a number or a missing field was a TypeError there, found by fuzzing).
 */
function checkPlatform(raw: unknown, what: string, digest: string): NonNullable<Descriptor['platform']> {
  if (typeof raw !== 'object' || Array.isArray(raw)) throw bad(what, `platform of ${digest} is not an object`);
  const p = raw as Record<string, unknown>;
  for (const k of ['architecture', 'os'] as const) {
    if (typeof p[k] !== 'string') throw bad(what, `platform.${k} of ${digest} is not a string`);
  }
  for (const k of ['variant', 'os.version'] as const) {
    if (p[k] !== undefined && typeof p[k] !== 'string') throw bad(what, `platform.${k} of ${digest} is not a string`);
  }
  const features = p['os.features'];
  if (features !== undefined && (!Array.isArray(features) || features.some((f) => typeof f !== 'string'))) {
    throw bad(what, `platform.os.features of ${digest} is not a list of strings`);
  }
  const out: NonNullable<Descriptor['platform']> = { architecture: p.architecture as string, os: p.os as string };
  if (p.variant !== undefined) out.variant = p.variant as string;
  if (p['os.version'] !== undefined) out['os.version'] = p['os.version'] as string;
  if (features !== undefined) out['os.features'] = features as string[];
  return out;
}

function stringMap(raw: unknown, what: string, field: string): Record<string, string> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(what, `${field} is not an object`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof v !== 'string') throw bad(what, `${field}: value of ${JSON.stringify(k)} is not a string`);
    out[k] = v;
  }
  return out;
}

export function checkDescriptor(raw: unknown, what: string): Descriptor {
  if (typeof raw !== 'object' || raw === null) throw bad(what, 'descriptor is not an object');
  const d = raw as Record<string, unknown>;
  if (typeof d.mediaType !== 'string') throw bad(what, 'descriptor mediaType missing');
  if (typeof d.digest !== 'string' || !isValidDigest(d.digest)) throw bad(what, `invalid digest ${JSON.stringify(d.digest)}`);
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) throw bad(what, `invalid size for ${d.digest}`);
  const out: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.platform !== undefined && d.platform !== null) out.platform = checkPlatform(d.platform, what, d.digest);
  if (d.annotations !== undefined && d.annotations !== null) out.annotations = stringMap(d.annotations, what, `annotations of ${d.digest}`);
  if (Array.isArray(d.urls)) out.urls = d.urls.filter((u): u is string => typeof u === 'string');
  return out;
}

function parseJson(data: Uint8Array, what: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(data).toString('utf8'));
  } catch (err) {
    throw bad(what, `not valid JSON: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(what, 'not a JSON object');
  return raw as Record<string, unknown>;
}

/**
 * Parse a manifest or index. `descMediaType` is what the registry/descriptor said; the
 * document's own mediaType wins when present.
 */
export function parseManifestOrIndex(
  data: Uint8Array,
  descMediaType: string,
  what: string,
): { kind: 'index'; index: Index } | { kind: 'manifest'; manifest: Manifest } {
  if (data.byteLength > MAX_MANIFEST_BYTES) throw bad(what, `larger than ${MAX_MANIFEST_BYTES} bytes`);
  const doc = parseJson(data, what);
  const mediaType = typeof doc.mediaType === 'string' && doc.mediaType !== '' ? doc.mediaType : descMediaType;
  if (isSchema1(mediaType) || doc.schemaVersion === 1) {
    throw errors.invalidArgument('image.schema1', `${what}: Docker schema 1 manifests are not supported`);
  }
  const looksIndex = isIndex(mediaType) || (Array.isArray(doc.manifests) && !Array.isArray(doc.layers));
  if (looksIndex) {
    if (!Array.isArray(doc.manifests)) throw bad(what, 'index has no manifests');
    if (doc.manifests.length > MAX_ENTRIES) throw bad(what, 'too many manifests');
    return {
      kind: 'index',
      index: {
        mediaType: isIndex(mediaType) ? mediaType : MediaType.ociIndex,
        manifests: doc.manifests.map((m, i) => checkDescriptor(m, `${what} manifests[${i}]`)),
      },
    };
  }
  if (!isManifest(mediaType) && !(doc.config && Array.isArray(doc.layers))) throw bad(what, `unsupported media type ${mediaType}`);
  if (!Array.isArray(doc.layers)) throw bad(what, 'manifest has no layers');
  if (doc.layers.length > MAX_ENTRIES) throw bad(what, 'too many layers');
  return {
    kind: 'manifest',
    manifest: {
      mediaType: isManifest(mediaType) ? mediaType : MediaType.ociManifest,
      config: checkDescriptor(doc.config, `${what} config`),
      layers: doc.layers.map((l, i) => checkDescriptor(l, `${what} layers[${i}]`)),
      annotations: doc.annotations && typeof doc.annotations === 'object' ? (doc.annotations as Record<string, string>) : undefined,
    },
  };
}
