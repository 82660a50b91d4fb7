/**
 * Config reload (SIGHUP), the pure part: which keys changed between the running config and a
 * newly loaded one, which of them can be applied at run time, and the config that results
 * (the running one with only the reloadable changes taken over). Applying them is
 * `Services.reconfigure`; reading the file and reporting is daemon.ts.
 */
import { RELOADABLE_KEYS, type Config } from './config.js';

export { RELOADABLE_KEYS };

/** Maps compared as one value (a change anywhere in them is a change of this key). */
const UNIT_KEYS = new Set(['registry.mirrors', 'registry.credentials']);
const isUnit = (path: string): boolean => UNIT_KEYS.has(path) || /^runtimes\.[^.]+$/.test(path);

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** JSON with sorted object keys, so TOML key order is no change. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) =>
    isPlainObject(val)
      ? Object.fromEntries(
          Object.keys(val)
            .sort()
            .map((k) => [k, val[k]]),
        )
      : val,
  );
}

/** Dotted names of the keys that differ (sections are descended into; maps like mirrors are one key). */
export function changedKeys(a: Config, b: Config): string[] {
  const out: string[] = [];
  const walk = (x: unknown, y: unknown, path: string): void => {
    if (path && (isUnit(path) || !isPlainObject(x) || !isPlainObject(y))) {
      if (canonical(x) !== canonical(y)) out.push(path);
      return;
    }
    const xo = x as Record<string, unknown>;
    const yo = y as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(xo), ...Object.keys(yo)])].sort();
    for (const k of keys) walk(xo[k], yo[k], path ? `${path}.${k}` : k);
  };
  walk(a, b, '');
  return out;
}

export interface ReloadPlan {
  /** Changed keys that are applied now. */
  apply: string[];
  /** Changed keys that need a restart of berthd; the running config keeps their old values. */
  restart: string[];
  /** The config to run with: the running one plus the `apply` changes. */
  next: Config;
}

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let cur = obj;
  for (const p of parts.slice(0, -1)) cur = cur[p] as Record<string, unknown>;
  cur[parts[parts.length - 1]!] = structuredClone(value);
}

function getPath(obj: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((o, p) => (isPlainObject(o) ? o[p] : undefined), obj);
}

/**
 * Plan a reload from `running` to `loaded`. `pinned` are reloadable keys fixed by the command
 * line (e.g. log_level by --log-level): their file value is neither applied nor a restart.
 */
export function planReload(running: Config, loaded: Config, pinned: ReadonlySet<string> = new Set()): ReloadPlan {
  const reloadable = new Set<string>(RELOADABLE_KEYS);
  const changed = changedKeys(running, loaded).filter((k) => !pinned.has(k));
  const apply = changed.filter((k) => reloadable.has(k));
  const restart = changed.filter((k) => !reloadable.has(k));
  const next = structuredClone(running);
  for (const k of apply) setPath(next as unknown as Record<string, unknown>, k, getPath(loaded, k));
  return { apply, restart, next };
}
