/**
 * The OCI image config (application/vnd.oci.image.config.v1+json), parsed defensively: the
 * blob is untrusted input, already size-capped by the caller. Only the fields berth uses are
 * kept, each type-checked; everything else is ignored.
 */
import { errors } from '../../errors.js';
import { isValidDigest } from './descriptor.js';

export interface ImageConfig {
  architecture: string;
  os: string;
  variant?: string;
  created?: string;
  author?: string;
  config: {
    User?: string;
    Env?: string[];
    Entrypoint?: string[];
    Cmd?: string[];
    WorkingDir?: string;
    Volumes?: Record<string, object>;
    ExposedPorts?: Record<string, object>;
    StopSignal?: string;
    Labels?: Record<string, string>;
  };
  rootfs: { type: string; diff_ids: string[] };
  history?: unknown[];
}

const strArray = (v: unknown, field: string): string[] | undefined => {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw bad(`${field} must be an array of strings`);
  return v as string[];
};
const str = (v: unknown, field: string): string | undefined => {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw bad(`${field} must be a string`);
  return v;
};
const obj = (v: unknown, field: string): Record<string, object> | undefined => {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(`${field} must be an object`);
  return v as Record<string, object>;
};
function bad(msg: string) {
  return errors.invalidArgument('image.bad_config', `image config: ${msg}`);
}

export function parseImageConfig(data: Uint8Array | string): ImageConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(typeof data === 'string' ? data : Buffer.from(data).toString('utf8'));
  } catch (err) {
    throw bad(`not valid JSON: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('not a JSON object');
  const r = raw as Record<string, unknown>;
  const c = (obj(r.config, 'config') ?? {}) as Record<string, unknown>;
  const rootfs = obj(r.rootfs, 'rootfs') as Record<string, unknown> | undefined;
  if (!rootfs) throw bad('rootfs is missing');
  const diffIds = strArray(rootfs.diff_ids, 'rootfs.diff_ids') ?? [];
  for (const d of diffIds) if (!isValidDigest(d)) throw bad(`rootfs.diff_ids: invalid digest ${JSON.stringify(d)}`);
  const labels = obj(c.Labels, 'config.Labels') as Record<string, unknown> | undefined;
  if (labels) for (const [k, v] of Object.entries(labels)) if (typeof v !== 'string') throw bad(`config.Labels.${k} must be a string`);
  return {
    architecture: str(r.architecture, 'architecture') ?? '',
    os: str(r.os, 'os') ?? '',
    variant: str(r.variant, 'variant'),
    created: str(r.created, 'created'),
    author: str(r.author, 'author'),
    config: {
      User: str(c.User, 'config.User'),
      Env: strArray(c.Env, 'config.Env'),
      Entrypoint: strArray(c.Entrypoint, 'config.Entrypoint'),
      Cmd: strArray(c.Cmd, 'config.Cmd'),
      WorkingDir: str(c.WorkingDir, 'config.WorkingDir'),
      Volumes: obj(c.Volumes, 'config.Volumes'),
      ExposedPorts: obj(c.ExposedPorts, 'config.ExposedPorts'),
      StopSignal: str(c.StopSignal, 'config.StopSignal'),
      Labels: labels as Record<string, string> | undefined,
    },
    rootfs: { type: str(rootfs.type, 'rootfs.type') ?? 'layers', diff_ids: diffIds },
    history: Array.isArray(r.history) ? r.history : undefined,
  };
}

const UINT32_MAX = 4294967295;

/** Strict unsigned 32-bit decimal id ("0".."4294967295"); undefined when not numeric. */
export function parseId(s: string): number | undefined {
  if (!/^[0-9]{1,10}$/.test(s)) return undefined;
  const n = Number(s);
  return n <= UINT32_MAX ? n : undefined;
}

/**
 * The CRI view of config.User: a numeric user part becomes uid, a name becomes username;
 * the group part is ignored ("1003:100" → uid 1003, "www-data:users" → username www-data).
 */
export function imageUser(user: string | undefined): { uid?: number; username?: string } {
  if (!user) return {};
  const userPart = user.split(':')[0] ?? '';
  if (userPart === '') return {};
  const uid = parseId(userPart);
  return uid !== undefined ? { uid } : { username: userPart };
}
