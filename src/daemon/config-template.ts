/**
 * The commented default config file (`berthd --default-config`, written by scripts/install.sh
 * to /etc/berth/berth.toml when none exists). Values and descriptions come from the schema in
 * config.ts, so the file always shows what this build really does. Every key is commented
 * out: a file left as written means "the embedded defaults", and a later berth with other
 * defaults is not pinned to this one's.
 */
import { stringify } from 'smol-toml';
import type { z } from 'zod';
import { configSchema, RELOADABLE_KEYS, validateConfig } from './config.js';
import { BERTH_VERSION } from '../version.js';

type Shape = Record<string, z.ZodTypeAny>;

/** The object shape under ZodDefault/ZodEffects/ZodOptional wrappers, if it is an object. */
function objectShape(t: z.ZodTypeAny): Shape | undefined {
  let cur: z.ZodTypeAny = t;
  for (let i = 0; i < 8; i++) {
    const def = cur._def as { typeName?: string; innerType?: z.ZodTypeAny; schema?: z.ZodTypeAny; shape?: () => Shape };
    if (def.typeName === 'ZodObject') return def.shape!();
    const next = def.innerType ?? def.schema;
    if (!next) return undefined;
    cur = next;
  }
  return undefined;
}

function valueLine(key: string, value: unknown): string {
  return stringify({ [key]: value }).trim();
}

function leafLines(shape: Shape, defaults: Record<string, unknown>, out: string[]): void {
  for (const [key, t] of Object.entries(shape)) {
    const v = defaults[key];
    // Sections get their own [header]; maps (mirrors, credentials, runtimes) get examples.
    if (objectShape(t) || v === undefined || (typeof v === 'object' && v !== null && !Array.isArray(v))) continue;
    if (t.description) out.push(`# ${t.description}`);
    out.push(`# ${valueLine(key, v)}`);
    out.push('');
  }
}

/** The commented TOML text. It parses to the embedded defaults (every key is commented out). */
export function renderDefaultConfig(): string {
  const defaults = validateConfig({}, 'defaults') as unknown as Record<string, unknown>;
  const shape = configSchema.shape as unknown as Shape;
  const out: string[] = [
    `# berthd configuration (TOML), written by \`berthd --default-config\` (berth ${BERTH_VERSION}).`,
    '#',
    '# Every key is commented out and shows its built-in default: berthd uses the default for any',
    '# key this file leaves out. Uncomment a key (under its [section]) to change it. Unknown keys',
    '# and bad values are reported by name and berthd refuses to start.',
    '#',
    '# Reload: `systemctl reload berthd` (SIGHUP) applies changes to',
    `#   ${RELOADABLE_KEYS.join(', ')}`,
    '# at once; a change to any other key is reported by name and needs a restart. A file that',
    '# does not parse or validate is refused and the running config stays as it was.',
    '# This file may hold registry credentials: keep it mode 0600.',
    '',
  ];
  leafLines(shape, defaults, out);
  for (const [section, t] of Object.entries(shape)) {
    const inner = objectShape(t);
    if (!inner) continue;
    out.push(`[${section}]`);
    leafLines(inner, (defaults[section] ?? {}) as Record<string, unknown>, out);
    if (section === 'registry') {
      out.push(
        '# Mirrors of a registry host ("*" for every host), tried in order before the host itself.',
        '# http:// is allowed for endpoints named here and for loopback registries; all else is https.',
        '# [registry.mirrors."docker.io"]',
        '# endpoints = ["https://mirror.example.internal"]',
        '',
        '# Credentials presented to one endpoint host (host[:port] of a registry or of a mirror),',
        '# when kubelet sends none for it: username + password, auth (base64 "user:password"), or',
        '# identity_token.',
        '# [registry.credentials."mirror.example.internal"]',
        '# username = "puller"',
        '# password = "secret"',
        '',
      );
    }
  }
  out.push(
    '# Runtime handlers (Kubernetes RuntimeClass handler names). "berth" always exists:',
    '# [runtimes.berth]',
    '# type = "io.containerd.berth.v1"      # berth-shim',
    "# Another handler, run by Debian's containerd-shim-runc-v2:",
    '# [runtimes.runc]',
    '# type = "io.containerd.runc.v2"',
    '# binary = "/usr/bin/runc"             # the OCI runtime the shim runs',
    '# pod_annotations = ["io.kubernetes.cri.rdt-class"]',
    '',
  );
  return out.join('\n');
}
