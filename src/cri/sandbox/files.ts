/**
 * The per-pod files every container of a pod shares (containerd's sandbox root/state split):
 *
 *   <root>/sandboxes/<id>/hostname, hosts, resolv.conf   persistent (survive a berthd restart)
 *   <state>/sandboxes/<id>/shm                           a 64 MiB tmpfs, the pod's /dev/shm
 *
 * CreateContainer bind-mounts these via src/oci sandboxFileMounts(sandboxFiles(...)).
 */
import { mountAll, unmount } from '../../mount.js';
import type { PodHostPort } from '../server/ports.js';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import type { DNSConfig } from '../../api/cri/runtime/v1/api_pb.js';
import { errors } from '../../errors.js';
import type { SandboxFiles } from '../../oci/index.js';
import type { RuntimeSettings } from '../server/runtime-context.js';

/** containerd's default size of the pod /dev/shm. */
export const SHM_SIZE = '64m';

export interface SandboxPaths extends SandboxFiles {
  /** Persistent directory: hostname, hosts, resolv.conf. */
  rootDir: string;
  /** Volatile directory holding the shm mount point. */
  stateDir: string;
  hostnamePath: string;
}

export function sandboxPaths(settings: Pick<RuntimeSettings, 'root' | 'state'>, id: string): SandboxPaths {
  const rootDir = join(settings.root, 'sandboxes', id);
  const stateDir = join(settings.state, 'sandboxes', id);
  return {
    rootDir,
    stateDir,
    hostnamePath: join(rootDir, 'hostname'),
    hostsPath: join(rootDir, 'hosts'),
    resolvConfPath: join(rootDir, 'resolv.conf'),
    shmPath: join(stateDir, 'shm'),
  };
}

/** resolv.conf text from a CRI DNSConfig (search, nameserver, options lines). */
export function resolvConfText(dns: Pick<DNSConfig, 'servers' | 'searches' | 'options'>): string {
  let out = '';
  if (dns.searches.length > 0) out += `search ${dns.searches.join(' ')}\n`;
  for (const s of dns.servers) out += `nameserver ${s}\n`;
  if (dns.options.length > 0) out += `options ${dns.options.join(' ')}\n`;
  return out;
}

/** /etc/hosts for a pod with its own network: loopback entries plus the pod IP line. */
export function hostsText(podIp: string | undefined, hostname: string): string {
  let out =
    '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n';
  if (podIp && hostname) out += `${podIp}\t${hostname}\n`;
  return out;
}

/** DNS field values become file lines: a newline or NUL in one would add lines of its own. */
function checkDns(dns: Pick<DNSConfig, 'servers' | 'searches' | 'options'>): void {
  const check = (list: string[], field: string): void =>
    list.forEach((v, i) => {
      if (/[\n\r\0]/.test(v) || v.trim() === '')
        throw errors.invalidArgument('sandbox.bad_dns', `config.dns_config.${field}[${i}] is empty or contains a line break`);
    });
  check(dns.servers, 'servers');
  check(dns.searches, 'searches');
  check(dns.options, 'options');
}

export function validateDns(dns: DNSConfig | undefined): void {
  if (dns) checkDns(dns);
}

/**
 * Writes hostname, hosts and resolv.conf. Host-network pods get the node's hosts file;
 * resolv.conf comes from the DNSConfig when given, else the node's.
 */
export async function writeSandboxFiles(p: SandboxPaths, o: { hostname: string; hostNetwork: boolean; podIp?: string; dns?: DNSConfig }): Promise<void> {
  await mkdir(p.rootDir, { recursive: true, mode: 0o711 });
  const hostname = o.hostname || osHostname();
  await writeFile(p.hostnamePath, `${hostname}\n`, { mode: 0o644 });
  const hosts = o.hostNetwork ? await readFile('/etc/hosts', 'utf8').catch(() => hostsText(undefined, '')) : hostsText(o.podIp, hostname);
  await writeFile(p.hostsPath, hosts, { mode: 0o644 });
  const resolv = o.dns ? resolvConfText(o.dns) : await readFile('/etc/resolv.conf', 'utf8').catch(() => '');
  await writeFile(p.resolvConfPath, resolv, { mode: 0o644 });
}

/** True when `path` is a mount point (per /proc/self/mountinfo). */
export async function isMountPoint(path: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  // Field 5 is the mount point, with spaces etc. octal-escaped.
  const esc = path.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
  return info.split('\n').some((l) => l.split(' ')[4] === esc);
}

/** Mounts the pod's private /dev/shm tmpfs (nosuid,nodev,noexec, mode 1777, 64 MiB). */
export async function mountShmTmpfs(shmPath: string): Promise<void> {
  await mkdir(shmPath, { recursive: true, mode: 0o700 });
  if (await isMountPoint(shmPath)) return;
  try {
    // mount(2) directly: a `mount` process costs milliseconds on the pod start path.
    mountAll([{ type: 'tmpfs', source: 'shm', options: ['nosuid', 'nodev', 'noexec', 'mode=1777', `size=${SHM_SIZE}`] }], shmPath);
  } catch (err) {
    throw errors.internal('sandbox.shm_mount', `mount tmpfs on ${shmPath}: ${(err as Error).message}`, err);
  }
}

/** Detaches the shm tmpfs (every stacked mount); succeeds when nothing is mounted. */
export async function unmountShmTmpfs(shmPath: string): Promise<void> {
  try {
    unmount(shmPath, { detach: true, all: true });
  } catch (err) {
    throw errors.internal('sandbox.shm_unmount', `umount ${shmPath}: ${(err as Error).message}`, err);
  }
}

/** Unmounts shm (through the pod host port), then removes both sandbox directories; idempotent. */
export async function removeSandboxDirs(pods: Pick<PodHostPort, 'unmountShm'>, p: SandboxPaths): Promise<void> {
  await pods.unmountShm(p.shmPath);
  await rm(p.stateDir, { recursive: true, force: true });
  await rm(p.rootDir, { recursive: true, force: true });
}
