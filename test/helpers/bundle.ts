/**
 * Test helper: OCI bundles with a busybox rootfs, for driving real runc.
 *
 * A shared rootfs template (busybox-static + applet symlinks) is built once per process under
 * a temp dir; each bundle gets its own copy of that small tree so containers never share a
 * writable root. cgroupsPath is under a test-unique parent so cleanup can remove everything.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, copyFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BUSYBOX = '/bin/busybox';

export function ensureBusybox(): void {
  if (existsSync(BUSYBOX)) return;
  execFileSync('apt-get', ['install', '-y', 'busybox-static'], { stdio: 'ignore' });
}

let template: string | undefined;

/** Build (once) a rootfs template: /bin/busybox + symlinks for every applet. */
export function rootfsTemplate(): string {
  if (template && existsSync(template)) return template;
  ensureBusybox();
  const dir = mkdtempSync(join(tmpdir(), 'berth-rootfs-'));
  for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp', 'etc', 'root']) mkdirSync(join(dir, d));
  copyFileSync(BUSYBOX, join(dir, 'bin/busybox'));
  chmodSync(join(dir, 'bin/busybox'), 0o755);
  const applets = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' })
    .split('\n')
    .filter((a) => a && a !== 'busybox');
  for (const a of applets) symlinkSync('busybox', join(dir, 'bin', a));
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\n');
  template = dir;
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface BundleOptions {
  args: string[];
  terminal?: boolean;
  env?: string[];
  annotations?: Record<string, string>;
  /** cgroupsPath parent (e.g. "/berth-test-<rand>"); the container's cgroup is <parent>/<id>. */
  cgroupParent: string;
  memoryLimit?: number;
  oomScoreAdj?: number;
  /** Join this pid namespace (e.g. /proc/<pid>/ns/pid of another container) instead of a new one. */
  pidNsPath?: string;
  /** Do not copy a rootfs into the bundle (the caller passes rootfs Mounts to Create). */
  emptyRootfs?: boolean;
}

export interface Bundle {
  id: string;
  dir: string;
  rootfs: string;
  cgroupsPath: string;
  remove(): void;
}

/** A minimal valid OCI config for a busybox container. */
export function ociConfig(id: string, o: BundleOptions): Record<string, unknown> {
  const resources: Record<string, unknown> = { devices: [{ allow: false, access: 'rwm' }] };
  if (o.memoryLimit !== undefined) resources.memory = { limit: o.memoryLimit, swap: o.memoryLimit };
  return {
    ociVersion: '1.0.2-dev',
    process: {
      terminal: o.terminal ?? false,
      user: { uid: 0, gid: 0 },
      args: o.args,
      env: o.env ?? ['PATH=/bin', 'TERM=xterm'],
      cwd: '/',
      capabilities: {
        bounding: ['CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_SETUID', 'CAP_SETGID'],
        effective: ['CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_SETUID', 'CAP_SETGID'],
        permitted: ['CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_SETUID', 'CAP_SETGID'],
      },
      noNewPrivileges: true,
      ...(o.oomScoreAdj !== undefined ? { oomScoreAdj: o.oomScoreAdj } : {}),
    },
    root: { path: 'rootfs', readonly: false },
    hostname: id.slice(0, 12),
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    ],
    annotations: o.annotations ?? {},
    linux: {
      cgroupsPath: `${o.cgroupParent}/${id}`,
      resources,
      namespaces: [
        o.pidNsPath ? { type: 'pid', path: o.pidNsPath } : { type: 'pid' },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'mount' },
        { type: 'network' },
      ],
      maskedPaths: ['/proc/kcore', '/proc/keys', '/proc/timer_list'],
      readonlyPaths: ['/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

/** Create a bundle directory under `parent` with config.json and (unless emptyRootfs) a rootfs copy. */
export function makeBundle(parent: string, id: string, o: BundleOptions): Bundle {
  const dir = join(parent, id);
  const rootfs = join(dir, 'rootfs');
  mkdirSync(dir, { recursive: true });
  if (o.emptyRootfs) mkdirSync(rootfs);
  else cpSync(rootfsTemplate(), rootfs, { recursive: true, verbatimSymlinks: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(ociConfig(id, o), null, 2));
  return {
    id,
    dir,
    rootfs,
    cgroupsPath: `${o.cgroupParent}/${id}`,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export { removeCgroupTree } from './cgroup.js';
