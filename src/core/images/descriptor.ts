/**
 * The OCI content descriptor, shared by all image code (registry client, content store,
 * pull orchestrator, unpacker). Field names follow the OCI image spec's JSON.
 */

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

export interface Descriptor {
  mediaType: string;
  /** `<algorithm>:<hex>`, e.g. `sha256:…` */
  digest: string;
  /** Exact byte length of the content. */
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  /** Alternate locations (foreign / non-distributable layers). */
  urls?: string[];
  artifactType?: string;
}

const digestPattern = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

/** True for a well-formed sha256 / sha512 digest string (lowercase hex, exact length). */
export function isValidDigest(s: string): boolean {
  return digestPattern.test(s);
}
