/**
 * One CDI spec file: parsed (JSON, or YAML 1.1 as the Go reference reads it, so `0666` is
 * octal), checked field by field (unknown fields are refused, as the spec says), and checked
 * against its cdiVersion: a field newer than the declared version is an error.
 */
import { extname } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { deviceNameProblem, kindProblem, splitKind } from './names.js';

/** Spec versions berth reads, oldest first (the CDI spec's released versions). */
export const CDI_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.4.0', '0.5.0', '0.6.0', '0.7.0', '0.8.0', '1.0.0', '1.1.0'] as const;
export type CdiVersion = (typeof CDI_VERSIONS)[number];

/** Larger spec files are refused before parsing. */
export const MAX_SPEC_BYTES = 8 * 1024 * 1024;

const uint32 = z.number().int().min(0).max(4294967295);
const strings = z.array(z.string());
const envEntry = z.string().refine((s) => s.indexOf('=') > 0 && !s.includes('\0'), { message: 'must be NAME=VALUE' });
const absolute = z.string().refine((s) => s.startsWith('/') && !s.includes('\0'), { message: 'must be an absolute path' });

const deviceNode = z
  .object({
    path: absolute,
    hostPath: absolute.optional(),
    type: z.enum(['', 'b', 'c', 'u', 'p']).optional(),
    major: z.number().int().min(0).max(4294967295).optional(),
    minor: z.number().int().min(0).max(4294967295).optional(),
    fileMode: z.number().int().min(0).max(0o7777, { message: 'must be permission bits (at most 0o7777)' }).optional(),
    permissions: z
      .string()
      .refine((p) => p === '' || p === 'none' || /^[rwm]+$/.test(p), { message: 'must be a combination of r, w and m, or "none"' })
      .optional(),
    uid: uint32.optional(),
    gid: uint32.optional(),
  })
  .strict();

const mount = z
  .object({
    hostPath: z.string().min(1),
    containerPath: absolute,
    options: strings.optional(),
    type: z.string().optional(),
  })
  .strict();

export const HOOK_NAMES = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'] as const;
export type HookName = (typeof HOOK_NAMES)[number];

const hook = z
  .object({
    hookName: z.enum(HOOK_NAMES),
    path: absolute,
    args: strings.optional(),
    env: z.array(envEntry).optional(),
    timeout: z.number().int().min(1, { message: 'must be greater than zero' }).max(2147483647).optional(),
  })
  .strict();

const intelRdt = z
  .object({
    closID: z
      .string()
      .refine((c) => c === '/' || (c.length < 4096 && c !== '.' && c !== '..' && !/[/\n]/.test(c)), { message: 'invalid ClosID' })
      .optional(),
    l3CacheSchema: z.string().optional(),
    memBwSchema: z.string().optional(),
    schemata: strings.optional(),
    enableMonitoring: z.boolean().optional(),
  })
  .strict();

const netDevice = z.object({ hostInterfaceName: z.string().min(1), name: z.string().min(1) }).strict();

const containerEdits = z
  .object({
    env: z.array(envEntry).optional(),
    deviceNodes: z.array(deviceNode).optional(),
    netDevices: z.array(netDevice).optional(),
    hooks: z.array(hook).optional(),
    mounts: z.array(mount).optional(),
    intelRdt: intelRdt.optional(),
    additionalGids: z.array(uint32).optional(),
  })
  .strict();

const annotations = z.record(z.string().min(1), z.string());

const device = z
  .object({
    name: z.string(),
    annotations: annotations.optional(),
    containerEdits,
  })
  .strict();

const specSchema = z
  .object({
    cdiVersion: z.string(),
    kind: z.string(),
    annotations: annotations.optional(),
    devices: z.array(device),
    containerEdits: containerEdits.optional(),
  })
  .strict();

export type ContainerEdits = z.infer<typeof containerEdits>;
export type DeviceNode = z.infer<typeof deviceNode>;
export type CdiMount = z.infer<typeof mount>;
export type CdiHook = z.infer<typeof hook>;
export type CdiDevice = z.infer<typeof device>;
export type CdiSpecData = z.infer<typeof specSchema>;

/** A valid spec file. */
export interface CdiSpec {
  path: string;
  /** Index of its directory in the configured list: a higher one wins. */
  priority: number;
  kind: string;
  vendor: string;
  class: string;
  version: CdiVersion;
  containerEdits: ContainerEdits;
  devices: Map<string, CdiDevice>;
}

/** A spec file that could not be used, and the kind it declares when that could be read. */
export class SpecFileError extends Error {
  constructor(
    readonly path: string,
    readonly priority: number,
    message: string,
    readonly kind?: string,
  ) {
    super(message);
    this.name = 'SpecFileError';
  }
}

function editsEmpty(e: ContainerEdits | undefined): boolean {
  if (!e) return true;
  return !(e.env?.length || e.deviceNodes?.length || e.hooks?.length || e.mounts?.length || e.additionalGids?.length || e.intelRdt || e.netDevices?.length);
}

/** The oldest spec version that has every field the spec uses (the CDI reference's rules). */
export function requiredVersion(s: CdiSpecData): CdiVersion {
  const all = [s.containerEdits, ...s.devices.map((d) => d.containerEdits)].filter((e): e is ContainerEdits => e !== undefined);
  if (all.some((e) => (e.netDevices?.length ?? 0) > 0 || (e.intelRdt && (e.intelRdt.schemata !== undefined || e.intelRdt.enableMonitoring)))) return '1.1.0';
  if (all.some((e) => e.intelRdt !== undefined || (e.additionalGids?.length ?? 0) > 0)) return '0.7.0';
  if (Object.keys(s.annotations ?? {}).length > 0 || s.devices.some((d) => Object.keys(d.annotations ?? {}).length > 0)) return '0.6.0';
  if (splitKind(s.kind)?.class.includes('.')) return '0.6.0';
  if (s.devices.some((d) => /^[0-9]/.test(d.name))) return '0.5.0';
  if (all.some((e) => e.deviceNodes?.some((n) => n.hostPath !== undefined && n.hostPath !== ''))) return '0.5.0';
  if (all.some((e) => e.mounts?.some((m) => m.type !== undefined && m.type !== ''))) return '0.4.0';
  return '0.3.0';
}

function issuePath(path: (string | number)[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? p : `.${p}`;
  return out || '(top level)';
}

/**
 * The kind a file that does not parse seems to declare (a top-level `kind:` line), so that it
 * blocks only that kind's devices rather than every CDI device of the node.
 */
function kindInText(text: string): string | undefined {
  const m = /^\s{0,8}"?kind"?\s*:\s*"?([A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+)"?\s*,?\s*$/m.exec(text);
  return m && kindProblem(m[1]!) === undefined ? m[1] : undefined;
}

/** Parses the text of the spec file `path` (its extension picks JSON or YAML). */
export function parseSpecText(text: string, path: string, priority: number): CdiSpec {
  let raw: unknown;
  if (extname(path) === '.json') {
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new SpecFileError(path, priority, `not valid JSON: ${(err as Error).message}`, kindInText(text));
    }
  } else {
    const doc = parseDocument(text, { version: '1.1', uniqueKeys: true, prettyErrors: false });
    if (doc.errors.length > 0) throw new SpecFileError(path, priority, `not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`, kindInText(text));
    raw = doc.toJS({ maxAliasCount: 100 });
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new SpecFileError(path, priority, 'not a CDI spec (expected an object with cdiVersion, kind and devices)');
  const declaredKind = typeof (raw as { kind?: unknown }).kind === 'string' ? (raw as { kind: string }).kind : undefined;
  const kindOk = declaredKind !== undefined && kindProblem(declaredKind) === undefined ? declaredKind : undefined;
  const fail = (msg: string): never => {
    throw new SpecFileError(path, priority, msg, kindOk);
  };
  const r = specSchema.safeParse(raw);
  if (!r.success) {
    const problems = r.error.issues.slice(0, 5).map((i) => {
      if (i.code === 'unrecognized_keys')
        return `${issuePath(i.path)}: unknown field${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => JSON.stringify(k)).join(', ')}`;
      return `${issuePath(i.path)}: ${i.message}`;
    });
    fail(problems.join('; '));
  }
  const data = r.data!;
  const version = data.cdiVersion.replace(/^v/, '');
  if (!(CDI_VERSIONS as readonly string[]).includes(version))
    fail(
      `cdiVersion: ${JSON.stringify(data.cdiVersion)} is not a CDI spec version berth knows (${CDI_VERSIONS[0]} to ${CDI_VERSIONS[CDI_VERSIONS.length - 1]})`,
    );
  const kp = kindProblem(data.kind);
  if (kp) fail(`kind: ${kp}`);
  const need = requiredVersion(data);
  if (CDI_VERSIONS.indexOf(need) > CDI_VERSIONS.indexOf(version as CdiVersion))
    fail(`cdiVersion: the fields used need at least ${need}, the file declares ${data.cdiVersion}`);
  const devices = new Map<string, CdiDevice>();
  data.devices.forEach((d, i) => {
    const p = deviceNameProblem(d.name);
    if (p) fail(`devices[${i}].name: ${p}`);
    if (devices.has(d.name)) fail(`devices[${i}].name: device ${JSON.stringify(d.name)} is defined twice`);
    if (editsEmpty(d.containerEdits)) fail(`devices[${i}] (${d.name}): containerEdits must not be empty`);
    devices.set(d.name, d);
  });
  if (devices.size === 0) fail('devices: a spec must define at least one device');
  const k = splitKind(data.kind)!;
  return {
    path,
    priority,
    kind: data.kind,
    vendor: k.vendor,
    class: k.class,
    version: version as CdiVersion,
    containerEdits: data.containerEdits ?? {},
    devices,
  };
}
