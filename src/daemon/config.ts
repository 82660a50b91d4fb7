/**
 * berthd configuration: embedded defaults, optionally overridden by a TOML file.
 *
 * Every key is validated at start; unknown keys and bad values are reported by their dotted
 * name and berthd refuses to start. The defaults alone are a complete working config.
 */
import { readFileSync } from 'node:fs';
import { parse as parseToml } from 'smol-toml';
import { z } from 'zod';
import { errors } from '../errors.js';

const absPath = z.string().min(1).refine((p) => p.startsWith('/'), { message: 'must be an absolute path' });
const endpoint = z
  .string()
  .url()
  .refine((u) => /^https?:\/\//.test(u), { message: 'must be an http:// or https:// URL' });

const runtimeSchema = z
  .object({
    /** Shim v2 runtime type: io.containerd.berth.v1 (berth-shim) or io.containerd.runc.v2 (containerd-shim-runc-v2). */
    type: z.string().default('io.containerd.berth.v1'),
    /** OCI runtime binary the shim runs (default runc). */
    binary: z.string().min(1).optional(),
    /** Shim binary override (default: derived from type). */
    shim: z.string().min(1).optional(),
    /** Pod annotation patterns ('*' globs) passed through to the OCI specs of the pod. */
    pod_annotations: z.array(z.string()).default([]),
    /**
     * Container annotation patterns ('*' globs) passed through to the container's OCI spec; no
     * other container annotation is (runc acts on some, e.g. org.systemd.property.*).
     */
    container_annotations: z.array(z.string()).default([]),
  })
  .strict();

export const configSchema = z
  .object({
    root: absPath.default('/var/lib/berth'),
    state: absPath.default('/run/berth'),
    socket: absPath.default('/run/berth/berth.sock'),
    sandbox_image: z.string().min(1).default('registry.k8s.io/pause:3.9'),
    log_level: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
    default_runtime: z.string().min(1).default('berth'),
    /** "auto" detects whether lowering oom_score_adj is possible (CAP_SYS_RESOURCE); true always clamps. */
    restrict_oom_score_adj: z.union([z.boolean(), z.literal('auto')]).default('auto'),
    snapshotter: z.enum(['overlayfs', 'native', 'auto']).default('auto'),
    max_concurrent_downloads: z.number().int().min(1).max(64).default(4),
    cni: z
      .object({
        bin_dirs: z.array(absPath).min(1).default(['/usr/lib/cni', '/opt/cni/bin']),
        conf_dir: absPath.default('/etc/cni/net.d'),
      })
      .strict()
      .default({}),
    registry: z
      .object({
        mirrors: z.record(z.string().min(1), z.object({ endpoints: z.array(endpoint).min(1) }).strict()).default({}),
      })
      .strict()
      .default({}),
    shim: z
      .object({
        /** How containers are grouped into shim processes: one per pod, or one per node. */
        group: z.enum(['pod', 'node']).default('pod'),
      })
      .strict()
      .default({}),
    runtimes: z.record(z.string().min(1), runtimeSchema).default({}),
    streaming: z
      .object({ address: z.string().default('127.0.0.1:0') })
      .strict()
      .default({}),
    metrics: z
      /** Prometheus endpoint host:port (loopback by default); "" disables it. */
      .object({ address: z.string().default('127.0.0.1:9338') })
      .strict()
      .default({}),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type RuntimeConfig = z.infer<typeof runtimeSchema>;

/** Validate a parsed config object; throws InvalidArgument listing every problem by key. */
export function validateConfig(raw: unknown, source = 'config'): Config {
  const r = configSchema.safeParse(raw ?? {});
  if (!r.success) {
    const problems = r.error.issues.map((i) => {
      const key = i.path.join('.');
      if (i.code === 'unrecognized_keys') {
        const where = key ? `${key}.` : '';
        return `unknown key ${i.keys.map((k) => `"${where}${k}"`).join(', ')}`;
      }
      return `${key || '(top level)'}: ${i.message}`;
    });
    throw errors.invalidArgument('config.invalid', `${source}: ${problems.join('; ')}`);
  }
  const cfg = r.data;
  if (!cfg.runtimes.berth) cfg.runtimes.berth = runtimeSchema.parse({});
  if (!cfg.runtimes[cfg.default_runtime]) {
    throw errors.invalidArgument('config.invalid', `${source}: default_runtime: no [runtimes.${cfg.default_runtime}] section`);
  }
  return cfg;
}

/** Load the config: embedded defaults, overridden by the TOML file when one is given. */
export function loadConfig(file?: string): Config {
  if (!file) return validateConfig({}, 'defaults');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw errors.invalidArgument('config.unreadable', `cannot read config file ${file}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (err) {
    throw errors.invalidArgument('config.syntax', `${file}: ${(err as Error).message}`);
  }
  return validateConfig(raw, file);
}
