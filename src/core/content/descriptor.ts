/**
 * Structural copy of the OCI descriptor used by the content store. The canonical type lives in
 * src/core/images/descriptor.ts (owned by the images module); this interface is kept
 * structurally identical so either can be passed where the other is expected.
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
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  urls?: string[];
}
