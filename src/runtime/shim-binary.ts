/**
 * The shim v2 binary protocol, daemon side (what containerd's runtime v2 does):
 *   <shim> -namespace NS -address ADDR [-publish-binary BIN] -id ID [-debug] start
 *       cwd = bundle; env TTRPC_ADDRESS, GRPC_ADDRESS, NAMESPACE; stdin = runtime options
 *       (a protobuf Any, as containerd sends it); stdout = the shim's address.
 *   <shim> -namespace NS -address ADDR -id ID -bundle B delete
 *       cleans up after a dead shim; stdout = DeleteResponse protobuf.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { AnySchema, timestampDate, type Any } from '@bufbuild/protobuf/wkt';
import { errors } from '../errors.js';
import { DeleteResponseSchema } from '../api/containerd/runtime/v2/task/shim_pb.js';
import { OptionsSchema } from '../api/containerd/runc/options/oci_pb.js';
import { BERTH_SHIM_TYPE, type RuntimeHandler } from './types.js';

/** `io.containerd.runc.v2` → `containerd-shim-runc-v2`. */
export function shimBinaryName(type: string): string {
  const parts = type.split('.');
  if (parts.length < 2 || parts.some((p) => !/^[A-Za-z0-9_-]+$/.test(p))) {
    throw errors.invalidArgument('runtime.bad_shim_type', `runtime type ${JSON.stringify(type)} is not of the form io.containerd.<name>.<version>`);
  }
  const [name, version] = parts.slice(-2) as [string, string];
  return `containerd-shim-${name}-${version}`;
}

/** The repo's bin/ directory (works from src/ via tsx and from dist/src/). */
export function repoBinDir(): string | undefined {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const up of ['../..', '../../..']) {
    const d = resolve(here, up, 'bin');
    if (existsSync(join(d, 'berth-shim'))) return d;
  }
  return undefined;
}

function lookPath(name: string, pathEnv = process.env.PATH ?? ''): string | undefined {
  for (const dir of pathEnv.split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

/**
 * Shim binary path for a handler: the override; for berth-shim the one shipped beside this
 * berthd (never another install's from PATH); else PATH.
 */
export function resolveShimBinary(h: RuntimeHandler): string {
  if (h.shim) return h.shim;
  const name = shimBinaryName(h.type);
  if (h.type === BERTH_SHIM_TYPE) {
    const bin = repoBinDir();
    if (bin) return join(bin, name);
  }
  const found = lookPath(name);
  if (found) return found;
  throw errors.failedPrecondition('runtime.shim_not_found', `shim binary ${name} for runtime ${h.type} not found on PATH`);
}

/** runc Options for the handler, packed the way containerd does (bare type name). */
export function runtimeOptions(h: RuntimeHandler): Any | undefined {
  if (!h.binary && !h.root && !h.systemdCgroup) return undefined;
  const o = create(OptionsSchema, { binaryName: h.binary ?? '', root: h.root ?? '', systemdCgroup: h.systemdCgroup ?? false });
  return create(AnySchema, { typeUrl: OptionsSchema.typeName, value: toBinary(OptionsSchema, o) });
}

export interface ShimExecContext {
  binary: string;
  namespace: string;
  id: string;
  bundle: string;
  /** berthd's main address (-address, GRPC_ADDRESS). */
  address: string;
  /** Events ttrpc socket (TTRPC_ADDRESS). */
  ttrpcAddress: string;
  publishBinary?: string;
  debug?: boolean;
  env?: Record<string, string>;
  timeoutMs?: number;
}

interface RunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

function runShim(c: ShimExecContext, args: string[], stdin: Uint8Array | undefined): Promise<RunResult> {
  return new Promise((resolveP, reject) => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...c.env,
      TTRPC_ADDRESS: c.ttrpcAddress,
      GRPC_ADDRESS: c.address,
      NAMESPACE: c.namespace,
    };
    const child = spawn(c.binary, args, { cwd: c.bundle, env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(errors.deadlineExceeded('runtime.shim_exec_timeout', `${c.binary} ${args.at(-1)}: no answer within ${c.timeoutMs} ms`));
    }, c.timeoutMs ?? 30_000);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      if (err.length < 8192) err += d.toString();
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(errors.failedPrecondition('runtime.shim_exec', `exec ${c.binary}: ${e.message}`, e));
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolveP({ code, stdout: Buffer.concat(out), stderr: err });
    });
    // The runc shim reads stdin to EOF during start: always close it.
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin ? Buffer.from(stdin) : undefined);
  });
}

function baseArgs(c: ShimExecContext): string[] {
  const a = ['-namespace', c.namespace, '-address', c.address];
  if (c.publishBinary) a.push('-publish-binary', c.publishBinary);
  a.push('-id', c.id);
  if (c.debug) a.push('-debug');
  return a;
}

/**
 * Parses what `start` printed: a plain `unix://PATH` (shim v2), or the JSON bootstrap params of
 * newer shims ({"version":2,"address":"unix://…","protocol":"ttrpc"}). Returns the socket path.
 */
export function parseShimAddress(out: string): string {
  let s = out.trim();
  if (s.startsWith('{')) {
    let j: { address?: unknown; protocol?: unknown };
    try {
      j = JSON.parse(s) as typeof j;
    } catch {
      throw errors.internal('runtime.shim_bad_address', `shim start printed unparsable JSON: ${s.slice(0, 200)}`);
    }
    if (j.protocol !== undefined && j.protocol !== 'ttrpc') {
      throw errors.unimplemented('runtime.shim_protocol', `shim speaks ${String(j.protocol)}; only ttrpc is supported`);
    }
    s = typeof j.address === 'string' ? j.address : '';
  }
  const m = /^(?:ttrpc\+)?unix:\/\/(\/.+)$/.exec(s);
  if (!m) throw errors.internal('runtime.shim_bad_address', `shim start printed ${JSON.stringify(s.slice(0, 200))}, want unix:///path`);
  return m[1] as string;
}

/** Execs `start`; resolves to the shim's socket path. */
export async function shimStart(c: ShimExecContext, options: Any | undefined): Promise<string> {
  const r = await runShim(c, [...baseArgs(c), 'start'], options ? toBinary(AnySchema, options) : undefined);
  if (r.code !== 0) {
    throw errors.failedPrecondition('runtime.shim_start', `${c.binary} start (id ${c.id}) exited ${r.code}: ${r.stderr.trim() || r.stdout.toString().trim()}`);
  }
  return parseShimAddress(r.stdout.toString('utf8'));
}

/** Execs `delete` for a bundle whose shim is gone; returns the DeleteResponse (or defaults). */
export async function shimDelete(c: ShimExecContext): Promise<{ pid: number; exitStatus: number; exitedAt: Date }> {
  const r = await runShim(c, [...baseArgs(c), '-bundle', c.bundle, 'delete'], undefined);
  if (r.code !== 0) {
    throw errors.internal('runtime.shim_delete', `${c.binary} delete (id ${c.id}) exited ${r.code}: ${r.stderr.trim()}`);
  }
  try {
    const d = fromBinary(DeleteResponseSchema, r.stdout);
    return { pid: d.pid, exitStatus: d.exitStatus, exitedAt: d.exitedAt ? timestampDate(d.exitedAt) : new Date() };
  } catch {
    return { pid: 0, exitStatus: 255, exitedAt: new Date() };
  }
}
