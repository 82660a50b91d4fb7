/**
 * Process arguments, environment, working directory and stop signal of a container.
 */
import { Signal, type KeyValue } from '../api/cri/runtime/v1/api_pb.js';
import { DEFAULT_PATH_ENV } from './defaults.js';
import type { ImageConfig } from './spec.js';
import { absPath, invalid, noNul } from './values.js';

/**
 * Kubernetes rules for command/args against the image's Entrypoint/Cmd:
 *   no command, no args → Entrypoint + Cmd
 *   no command, args    → Entrypoint + args
 *   command, no args    → command (Cmd dropped)
 *   command, args       → command + args
 * An Entrypoint of exactly [""] counts as unset (Docker's way to clear it).
 */
export function processArgs(command: readonly string[], args: readonly string[], image: ImageConfig, field: string): string[] {
  let cmd = [...command];
  let rest = [...args];
  if (cmd.length === 0) {
    if (rest.length === 0) rest = [...(image.Cmd ?? [])];
    const ep = image.Entrypoint ?? [];
    if (!(ep.length === 1 && ep[0] === '')) cmd = [...ep];
  }
  const out = [...cmd, ...rest];
  if (out.length === 0) throw invalid(field, 'no command specified (neither the config nor the image has one)', 'oci.no_command');
  out.forEach((a, i) => noNul(a, `${field}[${i}]`));
  return out;
}

const envKey = (entry: string): string => {
  const i = entry.indexOf('=');
  return i < 0 ? entry : entry.slice(0, i);
};

/**
 * Applies overrides to an environment list like containerd's WithEnv: an override replaces
 * the entry with the same key in place, new keys are appended, and an override without "="
 * removes that key. Returns a new array; inputs are not touched.
 */
export function mergeEnv(base: readonly string[], overrides: readonly string[]): string[] {
  const out = [...base];
  for (const o of overrides) {
    const key = envKey(o);
    const idx = out.findIndex((e) => envKey(e) === key);
    if (!o.includes('=')) {
      if (idx >= 0) out.splice(idx, 1);
      continue;
    }
    if (idx >= 0) out[idx] = o;
    else out.push(o);
  }
  return out;
}

/** Image Env entries, checked (they come from an untrusted image config). */
function imageEnv(image: ImageConfig): string[] {
  return (image.Env ?? []).map((e, i) => {
    if (typeof e !== 'string' || e === '' || e.startsWith('='))
      throw invalid(`image config Env[${i}]`, `invalid entry ${JSON.stringify(e)}`, 'oci.invalid_env');
    return noNul(e, `image config Env[${i}]`);
  });
}

/** Lossy UTF-8 (U+FFFD for bad sequences): what Go's JSON does when containerd writes the spec. */
const utf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

/**
 * CRI envs → "K=V"; keys must be non-empty and contain no "=" (it would shift the split).
 * Values are bytes (cri-api 1.37): one that is not valid UTF-8 is written with U+FFFD in place
 * of the bad bytes (config.json is JSON text) instead of failing the request.
 */
function configEnv(envs: readonly KeyValue[], field: string): string[] {
  return envs.map((kv, i) => {
    if (kv.key === '' || kv.key.includes('='))
      throw invalid(`${field}[${i}].key`, `invalid environment variable name ${JSON.stringify(kv.key)}`, 'oci.invalid_env');
    noNul(kv.key, `${field}[${i}].key`);
    const value = utf8.decode(kv.value);
    noNul(value, `${field}[${i}].value`);
    return `${kv.key}=${value}`;
  });
}

/**
 * The container's environment: PATH default, HOSTNAME, then the image's Env, then the
 * config's envs, later entries winning by key. Always a fresh array of fresh strings, so no
 * two containers share (and can leak through) one image config's Env array.
 */
export function containerEnv(image: ImageConfig, envs: readonly KeyValue[], hostname: string, field: string): string[] {
  let env = [DEFAULT_PATH_ENV];
  env = mergeEnv(env, [`HOSTNAME=${noNul(hostname, 'hostname')}`]);
  env = mergeEnv(env, imageEnv(image));
  env = mergeEnv(env, configEnv(envs, field));
  return env;
}

/** The pause container's environment: PATH default then the image's Env. */
export function sandboxEnv(image: ImageConfig): string[] {
  return mergeEnv([DEFAULT_PATH_ENV], imageEnv(image));
}

/**
 * Working directory: the config's, else the image's, else "/". Must be absolute; it is
 * resolved inside the rootfs by runc (which never follows links out of it).
 */
export function workingDir(configDir: string, image: ImageConfig, field: string): string {
  if (configDir !== '') return absPath(configDir, field);
  if (image.WorkingDir) return absPath(image.WorkingDir, 'image config WorkingDir');
  return '/';
}

const SIGNAL_NUMBERS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGIOT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGSTKFLT: 16,
  SIGCHLD: 17,
  SIGCLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGURG: 23,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGVTALRM: 26,
  SIGPROF: 27,
  SIGWINCH: 28,
  SIGIO: 29,
  SIGPOLL: 29,
  SIGPWR: 30,
  SIGSYS: 31,
};
const SIGRTMIN = 34;
const SIGRTMAX = 64;

/** "TERM", "SIGTERM", "15", "SIGRTMIN+3" → signal number; undefined when not a signal. */
export function parseSignal(s: string): number | undefined {
  const t = s.trim().toUpperCase();
  if (/^[0-9]{1,2}$/.test(t)) {
    const n = Number(t);
    return n >= 1 && n <= SIGRTMAX ? n : undefined;
  }
  const name = t.startsWith('SIG') ? t : `SIG${t}`;
  if (name in SIGNAL_NUMBERS) return SIGNAL_NUMBERS[name];
  const rt = /^SIGRT(MIN|MAX)(?:([+-])([0-9]{1,2}))?$/.exec(name);
  if (rt) {
    const base = rt[1] === 'MIN' ? SIGRTMIN : SIGRTMAX;
    const off = rt[3] === undefined ? 0 : Number(rt[3]) * (rt[2] === '-' ? -1 : 1);
    const n = base + off;
    return n >= SIGRTMIN && n <= SIGRTMAX ? n : undefined;
  }
  return undefined;
}

/**
 * The signal that stops the container: the config's stop_signal when set, else the image's
 * StopSignal, else SIGTERM. Returned as a number for kill(2).
 */
export function stopSignal(configSignal: Signal, image: ImageConfig): number {
  if (configSignal !== Signal.RUNTIME_DEFAULT) {
    const name = Signal[configSignal];
    const n = name === undefined ? undefined : parseSignal(name.replace('PLUS', '+').replace('MINUS', '-'));
    if (n === undefined) throw invalid('container config: stop_signal', `unknown signal ${configSignal}`);
    return n;
  }
  if (image.StopSignal) {
    const n = parseSignal(image.StopSignal);
    if (n === undefined) throw invalid('image config StopSignal', `unknown signal ${JSON.stringify(image.StopSignal)}`);
    return n;
  }
  return SIGNAL_NUMBERS.SIGTERM!;
}
