/**
 * What berthd and berth-shim agree on, in one place: annotations, environment names, the
 * shim's socket path, the on-disk layout of a task that conmon monitors, and the stdio URIs
 * that stand for "conmon holds this stream". Both sides import this module; neither imports
 * the other's implementation.
 *
 * Layout (the shim keeps no state that is not here; a new shim rebuilds everything from it):
 *
 *   <shimState>/<ns>.sock               the namespace's berth-shim (ttrpc, mode 0600, dir 0700)
 *   <shimState>/<ns>.sock.pid / .log    its pid and log
 *   <shimState>/tasks/<ns>/<id>         one file per hosted container: its bundle path
 *   <shimState>/a/<cuuid> -> <procdir>  conmon's short link to a process dir (attach socket)
 *   <bundle>/                           the container's process dir (init):
 *       monitor.json                     what the shim needs to take the container over
 *       conmon.pid, init.pid             conmon's and the container's pids
 *       exit, oom                        written by conmon (exit code; OOM seen)
 *       exit-reason                      written by the shim when conmon died without an exit
 *       exit-reported                    the TaskExit of this exit was published
 *       cgroup                           the init's /proc/<pid>/cgroup, written once it runs:
 *                                        the shim's Stats and berthd's CRI stats read it
 *       attach, ctl, winsz               conmon's attach socket and control FIFOs
 *   <bundle>/x/<execId>/                 an exec's process dir (process.json, monitor.json, pid, the same files)
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';

/** Annotations berthd writes into a bundle's config.json that the shim reads. */
export const CRI_CONTAINER_TYPE_ANNOTATION = 'io.kubernetes.cri.container-type';
export const SANDBOX_ID_ANNOTATION = 'io.kubernetes.cri.sandbox-id';
/** Update annotation asking the shim to reopen the container's CRI log (kubelet rotation). */
export const REOPEN_LOG_ANNOTATION = 'io.berth.shim.reopen-log';

/** Environment berthd sets for the shims it starts. */
export const ENV_SHIM_STATE_DIR = 'BERTH_SHIM_STATE_DIR';
export const ENV_RUNC_ROOT = 'BERTH_RUNC_ROOT';
export const ENV_CONMON = 'BERTH_CONMON';

/** The shim `serve` process writes this line on fd 3 once it listens (the start handshake). */
export const READY_LINE = 'ok\n';

/**
 * stdin of a container whose input goes through conmon's attach socket (berthd's attach
 * connects there directly). `?once=1`: conmon closes the container's stdin when the first
 * attach session ends (CRI stdin_once).
 */
export const ATTACH_STDIN = 'attach://stdin';
export function attachStdin(once: boolean): string {
  return once ? `${ATTACH_STDIN}?once=1` : ATTACH_STDIN;
}
export function parseAttachStdin(s: string): { once: boolean } | undefined {
  if (s !== ATTACH_STDIN && !s.startsWith(`${ATTACH_STDIN}?`)) return undefined;
  return { once: new URLSearchParams(s.slice(ATTACH_STDIN.length + 1)).get('once') === '1' };
}

export function shimStateDir(address: string, env: NodeJS.ProcessEnv = process.env): string {
  if (env[ENV_SHIM_STATE_DIR]) return env[ENV_SHIM_STATE_DIR] as string;
  if (/containerd\.sock$/.test(address)) return '/run/containerd/s/berth';
  return '/run/berth/s';
}

/** The one shim of a namespace listens here. */
export function shimSocketPath(stateDir: string, namespace: string): string {
  return join(stateDir, `${namespace}.sock`);
}

/** The registry entry that tells a restarted shim which bundles it hosts. */
export function taskRegistryPath(stateDir: string, namespace: string, id: string): string {
  return join(stateDir, 'tasks', namespace, id);
}

/** conmon's container uuid: short, so <shimState>/a/<cuuid>/attach fits in sun_path. */
export function conmonCuuid(namespace: string, id: string, execId = ''): string {
  return createHash('sha256').update(`${namespace}/${id}/${execId}`).digest('hex').slice(0, 20);
}

export function attachLinkDir(stateDir: string): string {
  return join(stateDir, 'a');
}

/** The attach socket of a process (through conmon's short symlink). */
export function attachSocketPath(stateDir: string, namespace: string, id: string, execId = ''): string {
  return join(attachLinkDir(stateDir), conmonCuuid(namespace, id, execId), 'attach');
}

/** The process dir of the init process (the bundle) or of an exec. */
export function processDir(bundle: string, execId = ''): string {
  return execId ? join(bundle, 'x', execId) : bundle;
}

/** Written by the shim in a process dir when the monitor died without recording an exit. */
export const EXIT_REASON_FILE = 'exit-reason';
/**
 * The init process's /proc/<pid>/cgroup text, kept in the bundle by the shim once the init
 * runs (a pid may be reused later; this file is not). berthd reads the cgroup's usage through
 * it for the CRI stats instead of asking the shim (runtime/task-manager.ts `stats`).
 */
export const CGROUP_FILE = 'cgroup';

/** conmon's attach packets start with the stream they carry. */
export const ATTACH_STDOUT = 2;
export const ATTACH_STDERR = 3;
/** conmon ctl FIFO messages: "<type> <height> <width>\n". */
export const CTL_RESIZE = 1;
export const CTL_REOPEN_LOGS = 2;
