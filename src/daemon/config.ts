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

const DURATION_RE = /^(?:(\d+(?:\.\d+)?)(h|ms|m|s))+$/;

/**
 * A Go-style duration ("4h", "30s", "1h30m", "500ms"; "0" is zero), as containerd's and
 * kubelet's configs write them. Returns milliseconds; NaN when the text is not one.
 */
export function parseDuration(text: string): number {
  if (text === '0') return 0;
  if (!DURATION_RE.test(text)) return NaN;
  const unit: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
  let ms = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s)/g)) ms += Number(m[1]) * (unit[m[2] as string] as number);
  return Math.round(ms);
}

const duration = z
  .string()
  .refine((d) => Number.isFinite(parseDuration(d)), { message: 'must be a duration like "4h", "30s", "1h30m" or "0"' })
  .refine((d) => parseDuration(d) <= 2 ** 31 - 1, { message: 'must be at most 596h (timers hold 2^31-1 ms)' });

const absPath = z
  .string()
  .min(1)
  .refine((p) => p.startsWith('/'), { message: 'must be an absolute path' });
const endpoint = z
  .string()
  .url()
  .refine((u) => /^https?:\/\//.test(u), { message: 'must be an http:// or https:// URL' });

const runtimeSchema = z
  .object({
    type: z
      .string()
      .default('io.containerd.berth.v1')
      .describe('shim v2 runtime type: io.containerd.berth.v1 (berth-shim) or io.containerd.runc.v2 (containerd-shim-runc-v2)'),
    binary: z.string().min(1).optional().describe('OCI runtime binary the shim runs (default runc)'),
    shim: z
      .string()
      .min(1)
      .optional()
      .describe('shim binary (default: berth-shim beside berthd for io.containerd.berth.v1, else derived from type and looked up on PATH)'),
    pod_annotations: z.array(z.string()).default([]).describe('annotations (prefixes) pods and containers may pass through to the OCI spec'),
    container_annotations: z
      .array(z.string())
      .default([])
      .describe(
        "container annotations ('*' globs) passed through to the container's OCI spec; no other container annotation is (runc acts on some, e.g. org.systemd.property.*)",
      ),
  })
  .strict();

/** Registry credentials for one endpoint host (a mirror or a registry), as in a docker config.json. */
const credentialSchema = z
  .object({
    username: z.string().min(1).optional(),
    password: z.string().optional(),
    /** base64("username:password") */
    auth: z.string().min(1).optional(),
    identity_token: z.string().min(1).optional(),
  })
  .strict()
  .refine((c) => c.username !== undefined || c.auth !== undefined || c.identity_token !== undefined, {
    message: 'needs username (with password), auth or identity_token',
  })
  .refine((c) => c.password === undefined || c.username !== undefined, { message: 'password needs a username' });

export const configSchema = z
  .object({
    root: absPath.default('/var/lib/berth').describe('durable state: metadata database, content store, snapshots'),
    state: absPath.default('/run/berth').describe('ephemeral state: sockets, shim state, bundles, netns'),
    socket: absPath.default('/run/berth/berth.sock').describe('the CRI socket (mode 0660, parent dir 0711)'),
    sandbox_image: z.string().min(1).default('registry.k8s.io/pause:3.9').describe('pause image for pods that share a PID namespace'),
    log_level: z.enum(['debug', 'info', 'warn', 'error']).default('info').describe('debug | info | warn | error (berthd --log-level overrides it)'),
    default_runtime: z.string().min(1).default('berth').describe('runtime handler used when a pod names none'),
    restrict_oom_score_adj: z
      .union([z.boolean(), z.literal('auto')])
      .default('auto')
      .describe('clamp containers\' oom_score_adj to berthd\'s own: "auto" when CAP_SYS_RESOURCE is missing, true always'),
    snapshotter: z.enum(['overlayfs', 'native', 'auto']).default('auto').describe('overlayfs, native, or auto (overlayfs when it works)'),
    userns_rootfs: z
      .enum(['auto', 'idmap', 'copy'])
      .default('auto')
      .describe(
        'rootfs of pods with a user namespace: idmap (overlay over idmapped image layers), copy (ownership-shifted image copy per mapping), auto (idmap where the start probe passes, else copy; a container the kernel refuses falls back to copy)',
      ),
    max_concurrent_downloads: z.number().int().min(1).max(64).default(4).describe('layer downloads in parallel per pull'),
    cni: z
      .object({
        bin_dirs: z.array(absPath).min(1).default(['/usr/lib/cni', '/opt/cni/bin']).describe('where CNI plugin binaries are looked up, in order'),
        conf_dir: absPath.default('/etc/cni/net.d').describe('CNI network configs (*.conflist, *.conf, *.json): the first by name is used'),
        plugin_timeout: z
          .number()
          .positive()
          .max(3600)
          .default(60)
          .describe('seconds one CNI plugin exec may take; then its whole process group is killed and the call fails DeadlineExceeded'),
      })
      .strict()
      .default({}),
    registry: z
      .object({
        mirrors: z.record(z.string().min(1), z.object({ endpoints: z.array(endpoint).min(1) }).strict()).default({}),
        /** Endpoint host (host[:port] of a registry or mirror) → credentials presented to it. */
        credentials: z.record(z.string().min(1), credentialSchema).default({}),
      })
      .strict()
      .default({}),
    shim: z
      .object({
        group: z
          .enum(['pod', 'node'])
          .default('pod')
          .describe('ignored (accepted so older config files still load): berth-shim is one process per node, conmon monitors each container'),
      })
      .strict()
      .default({}),
    runtimes: z.record(z.string().min(1), runtimeSchema).default({}),
    streaming: z
      .object({
        address: z.string().default('127.0.0.1:0').describe('exec/attach/port-forward server host:port (loopback by default)'),
        idle_timeout: duration.default('4h').describe('a session with no traffic either way this long is closed (kubelet: 4h); "0" never'),
        stream_creation_timeout: duration
          .refine((d) => parseDuration(d) > 0, { message: 'must be more than 0' })
          .default('30s')
          .describe('how long a client has to open its streams after the upgrade (kubelet: 30s)'),
        max_connections: z
          .number()
          .int()
          .min(1)
          .max(65536)
          .default(256)
          .describe('exec/attach/port-forward sessions open at once; more are refused with HTTP 429'),
        max_streams_per_connection: z
          .number()
          .int()
          .min(8)
          .max(4096)
          .default(128)
          .describe('SPDY streams one session may have open (a forwarded connection takes 2); more are refused'),
      })
      .strict()
      .default({}),
    cdi: z
      .object({
        spec_dirs: z
          .array(absPath)
          .refine((d) => new Set(d.map((x) => x.replace(/\/+$/, '') || '/')).size === d.length, { message: 'lists a directory twice' })
          .default(['/etc/cdi', '/var/run/cdi'])
          .describe('CDI spec directories (*.json, *.yaml), lowest priority first: a device defined in a later directory wins'),
      })
      .strict()
      .default({}),
    metrics: z
      .object({ address: z.string().default('127.0.0.1:9338').describe('Prometheus endpoint host:port; "" turns it off; a busy port only warns') })
      .strict()
      .default({}),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;

/** Keys whose change a SIGHUP applies at run time; a change to any other key needs a restart (reload.ts). */
export const RELOADABLE_KEYS = [
  'log_level',
  'registry.mirrors',
  'registry.credentials',
  'cni.conf_dir',
  'cni.bin_dirs',
  'streaming.address',
  'streaming.idle_timeout',
  'streaming.stream_creation_timeout',
  'streaming.max_connections',
  'streaming.max_streams_per_connection',
  'metrics.address',
  'cdi.spec_dirs',
] as const;
export type RuntimeConfig = z.infer<typeof runtimeSchema>;
export type RegistryCredential = z.infer<typeof credentialSchema>;

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
    // smol-toml appends a frame of the lines around the error: they may hold a registry
    // password, and this message goes to the log. Keep its first line and the position.
    const e = err as Error & { line?: number; column?: number };
    const first = e.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '');
    const where = e.line !== undefined ? `line ${e.line}, column ${e.column ?? 0}: ` : '';
    throw errors.invalidArgument('config.syntax', `${file}: ${where}${first}`);
  }
  return validateConfig(raw, file);
}
