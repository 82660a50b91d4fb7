/**
 * Executing one CNI plugin binary (CNI spec section 2: execution protocol).
 *
 * Parameters go in CNI_* environment variables, the network configuration on stdin, the
 * result (or a {code, msg, details} error with a non-zero exit) on stdout; stderr is free-form
 * log output that we keep for error messages. Each exec has a timeout after which the plugin
 * is killed, and stdout/stderr are capped. A plugin runs in a process group of its own and the
 * whole group is killed (timeout, output overflow): a plugin's children (an IPAM plugin, a
 * helper it started) hold its pipes open, and the call ends without waiting for them.
 */
import { spawn } from 'node:child_process';
import { access, constants, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError, errors, type BerthErrorArgs, type ErrorCode } from '../errors.js';
import { kindOf } from '../error-codes.js';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'VERSION' | 'GC';

/** Well-known CNI error codes (0-99 are reserved by the spec; 100+ are plugin-specific). */
export const CniErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodingFailure: 6,
  InvalidNetworkConfig: 7,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  LimitedConnectivity: 51,
} as const;

/** A plugin exec that failed; carries what the plugin said. */
export class CniPluginError extends BerthError {
  constructor(
    code: Extract<ErrorCode, `cni.plugin_${string}`>,
    message: string,
    readonly plugin: string,
    readonly command: CniCommand,
    readonly cniCode?: number,
    readonly details?: string,
  ) {
    super(...([kindOf(code), code, message] as BerthErrorArgs));
    this.name = 'CniPluginError';
  }
}

export interface PluginExecRequest {
  /** Plugin type (file name) — used in messages. */
  plugin: string;
  /** Absolute path of the binary. */
  path: string;
  command: CniCommand;
  /** CNI_* variables; merged over the daemon's own environment (PATH is needed by plugins). */
  cniEnv: Record<string, string>;
  stdin: string;
  timeoutMs: number;
  /** Network name, for messages. */
  network?: string;
}

export interface PluginExecOutput {
  /** Parsed stdout, or undefined when the plugin printed nothing (normal for DEL). */
  output: unknown;
  stderr: string;
}

const STDOUT_CAP = 4 << 20;
const STDERR_CAP = 64 << 10;

/** Finds a plugin binary in bin dirs, in order. NotFound names the dirs searched. */
export async function findPlugin(binDirs: readonly string[], type: string): Promise<string> {
  for (const dir of binDirs) {
    const p = join(dir, type);
    try {
      const st = await stat(p);
      if (!st.isFile()) continue;
      await access(p, constants.X_OK);
      return p;
    } catch {
      // Not in this dir (or not executable): keep looking, as CNI_PATH lookup does.
    }
  }
  throw errors.notFound('cni.plugin_not_found', `CNI plugin ${JSON.stringify(type)} not found in ${binDirs.join(':') || '(no bin dirs)'}`);
}

function describe(req: PluginExecRequest): string {
  return `CNI plugin ${req.plugin}${req.network ? ` (network ${req.network})` : ''} ${req.command}`;
}

/** Maps a plugin's structured error to a BerthError kind: retryable ones are Unavailable. */
function codeFor(cniCode: number | undefined): 'cni.plugin_unavailable' | 'cni.plugin_incompatible' | 'cni.plugin_failed' {
  if (cniCode === CniErrorCode.TryAgainLater || cniCode === CniErrorCode.PluginNotAvailable) return 'cni.plugin_unavailable';
  if (cniCode === CniErrorCode.IncompatibleVersion || cniCode === CniErrorCode.InvalidNetworkConfig) return 'cni.plugin_incompatible';
  return 'cni.plugin_failed';
}

/** Builds the error for a non-zero exit from what the plugin printed. Exported for tests. */
export function pluginFailure(req: PluginExecRequest, exit: string, stdout: string, stderr: string): CniPluginError {
  let cniCode: number | undefined;
  let msg: string | undefined;
  let details: string | undefined;
  try {
    const doc: unknown = JSON.parse(stdout);
    if (typeof doc === 'object' && doc !== null) {
      const o = doc as Record<string, unknown>;
      if (typeof o['code'] === 'number') cniCode = o['code'];
      if (typeof o['msg'] === 'string') msg = o['msg'];
      if (typeof o['details'] === 'string' && o['details'] !== '') details = o['details'];
    }
  } catch {
    // Not the spec's error JSON: fall back to the raw output below.
  }
  const said =
    msg !== undefined
      ? `${msg}${details ? `: ${details}` : ''}${cniCode !== undefined ? ` (code ${cniCode})` : ''}`
      : (stderr.trim() || stdout.trim() || exit).slice(0, 2048);
  return new CniPluginError(codeFor(cniCode), `${describe(req)} failed: ${said}`, req.plugin, req.command, cniCode, details);
}

/** Runs the plugin once. Resolves with its parsed stdout, or rejects with CniPluginError. */
export function execPlugin(req: PluginExecRequest): Promise<PluginExecOutput> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) {
      // The daemon's own CNI_* (if any) must never leak into a plugin's parameters.
      if (v !== undefined && !k.startsWith('CNI_')) env[k] = v;
    }
    Object.assign(env, req.cniEnv);
    // detached: a process group of its own, so that a kill reaches the plugin's children too.
    const child = spawn(req.path, [], { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let settled = false;
    const killGroup = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    // After a kill: end now, whatever still holds the pipes (a child outside the group).
    const abandon = (err: CniPluginError) => {
      settled = true;
      clearTimeout(timer);
      child.stdout.destroy();
      child.stderr.destroy();
      child.stdin.destroy();
      reject(err);
    };
    const out: Buffer[] = [];
    let outLen = 0;
    let errText = '';
    let overflow = false;
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => {
      outLen += d.length;
      if (outLen > STDOUT_CAP) {
        overflow = true;
        killGroup();
        abandon(new CniPluginError('cni.plugin_output_too_large', `${describe(req)} printed more than ${STDOUT_CAP} bytes`, req.plugin, req.command));
        return;
      }
      out.push(d);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (errText.length < STDERR_CAP) errText += d;
    });
    // A plugin that exits without reading stdin makes our write fail with EPIPE: not our error.
    child.stdin.on('error', () => undefined);
    child.stdin.end(req.stdin);
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
      abandon(
        new CniPluginError(
          'cni.plugin_timeout',
          `${describe(req)} timed out after ${req.timeoutMs} ms (cni.plugin_timeout); its process group was killed`,
          req.plugin,
          req.command,
        ),
      );
    }, req.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      if (settled) return;
      reject(new CniPluginError('cni.plugin_exec_failed', `${describe(req)}: cannot execute ${req.path}: ${err.message}`, req.plugin, req.command));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (settled || timedOut || overflow) return;
      const stdout = Buffer.concat(out).toString('utf8');
      if (code !== 0) {
        reject(pluginFailure(req, code === null ? `killed by ${signal}` : `exit status ${code}`, stdout, errText));
        return;
      }
      if (stdout.trim() === '') {
        resolve({ output: undefined, stderr: errText });
        return;
      }
      try {
        resolve({ output: JSON.parse(stdout) as unknown, stderr: errText });
      } catch (err) {
        reject(new CniPluginError('cni.plugin_bad_output', `${describe(req)} printed invalid JSON: ${(err as Error).message}`, req.plugin, req.command));
      }
    });
  });
}
