/**
 * Defaults of a CRI container spec, as containerd 1.7's CRI plugin produces them: the kernel
 * filesystem mounts (without containerd's /run tmpfs, which the CRI plugin removes), masked
 * and read-only /proc paths, the default device rules and PATH.
 */
import { CRI_CONTAINER_TYPE_ANNOTATION, SANDBOX_ID_ANNOTATION } from '../shim-protocol.js';
import type { LinuxDevice, LinuxDeviceCgroup, Mount } from './spec.js';

export const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Fresh copies every call: specs are mutated by the builders. */
export function defaultMounts(): Mount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
  ];
}

/** The read-only cgroup filesystem mount containers get (Docker's behaviour). */
export function cgroupMount(): Mount {
  return { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] };
}

export const DEFAULT_MASKED_PATHS: readonly string[] = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/sys/firmware',
  // RAPL energy counters: a side channel on other tenants' computations (CVE-2020-8694).
  '/sys/devices/virtual/powercap',
  '/proc/scsi',
];

export const DEFAULT_READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/**
 * Device cgroup rules: deny everything, then allow the standard character devices
 * (null, random, full, tty, zero, urandom, console, pts/*, ptmx). runc creates the device
 * nodes for null, zero, full, random, urandom and tty itself.
 */
export function defaultDeviceRules(): LinuxDeviceCgroup[] {
  const c = (major: number, minor?: number): LinuxDeviceCgroup =>
    minor === undefined ? { allow: true, type: 'c', major, access: 'rwm' } : { allow: true, type: 'c', major, minor, access: 'rwm' };
  return [
    { allow: false, access: 'rwm' },
    c(1, 3), // /dev/null
    c(1, 8), // /dev/random
    c(1, 7), // /dev/full
    c(5, 0), // /dev/tty
    c(1, 5), // /dev/zero
    c(1, 9), // /dev/urandom
    c(5, 1), // /dev/console
    c(136), // /dev/pts/*
    c(5, 2), // /dev/ptmx
  ];
}

/** Everything allowed: privileged containers. */
export function allDevicesAllowed(): LinuxDeviceCgroup[] {
  return [{ allow: true, access: 'rwm' }];
}

/** No extra device nodes by default: runc creates the standard ones. */
export function defaultDevices(): LinuxDevice[] {
  return [];
}

/** OOM score adjustment of the pause container (the caller may raise it to its own). */
export const SANDBOX_OOM_SCORE_ADJ = -998;

/** CPU shares of the pause container. */
export const SANDBOX_CPU_SHARES = 2;

/**
 * Annotation keys (io.kubernetes.cri.*), as set by containerd's CRI plugin. The two berth-shim
 * reads are defined once, in shim-protocol.ts.
 */
export const Annotations = {
  ContainerType: CRI_CONTAINER_TYPE_ANNOTATION,
  ContainerTypeSandbox: 'sandbox',
  ContainerTypeContainer: 'container',
  SandboxID: SANDBOX_ID_ANNOTATION,
  SandboxName: 'io.kubernetes.cri.sandbox-name',
  SandboxNamespace: 'io.kubernetes.cri.sandbox-namespace',
  SandboxUID: 'io.kubernetes.cri.sandbox-uid',
  SandboxLogDir: 'io.kubernetes.cri.sandbox-log-directory',
  ContainerName: 'io.kubernetes.cri.container-name',
  ImageName: 'io.kubernetes.cri.image-name',
} as const;
