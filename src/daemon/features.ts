/**
 * What each runtime handler can really do on this machine, probed once at start, for
 * StatusResponse.runtime_handlers (kubelet decides from it whether it may ask for recursive
 * read-only mounts and user namespaces).
 *
 * - recursive_read_only_mounts: the handler's OCI runtime lists `rro` in `<runtime> features`
 *   (runc ≥ 1.1) and the kernel applies mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY): made
 *   for real in a throwaway mount namespace (a tmpfs with a submount, bound, set read-only
 *   recursively; a write into the submount must fail with EROFS).
 * - user_namespaces: in Kubernetes this means user namespaces *and* idmapped mounts (kubelet
 *   sends uid/gid mappings on every volume of a hostUsers=false pod). berthd makes the
 *   idmapped mounts itself (cri/container/idmap.ts, runc 1.1 has none), so it is true where
 *   the kernel allows user namespaces, every ancestor of the state dir is searchable by others,
 *   the handler's OCI runtime lists the user namespace, and an idmapped mount really maps ids
 *   (made at start: a file owned by root seen through a mount idmapped with a throwaway user
 *   namespace must show its mapped owner).
 * - how userns rootfs are made (not a CRI feature; settings.usernsRootfs, verbose info): over
 *   idmapped image layers where an overlay over an idmapped lower really works on the
 *   snapshots' filesystem (probed for real), else the ownership-shifted copy; config
 *   userns_rootfs forces either. The log says which, and why not idmapped.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { checkUsernsReachable } from '../cri/container/userns.js';
import { idmapBind, idmapRoot, removeStaging } from '../cri/container/idmap.js';
import { mountAll, unmount } from '../mount.js';
import { mkdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';

export interface HandlerFeatures {
  recursiveReadOnlyMounts: boolean;
  userNamespaces: boolean;
  /** Why a feature is off (for Status verbose info and the log). */
  reasons: Record<string, string>;
}

export interface FeatureReport {
  /** By configured handler name. */
  handlers: Record<string, HandlerFeatures>;
  supplementalGroupsPolicy: boolean;
  userNamespacesHostNetwork: boolean;
  /** Mount.mount_options (noexec, nodev, nosuid) are applied: runc sets them on any bind. */
  mountOptions: boolean;
  /** How userns containers get their rootfs (config userns_rootfs + the idmapped overlay probe); `reason` when not idmapped. */
  usernsRootfs: { mode: 'idmap' | 'copy'; fallback: boolean; reason?: string };
}

export type UsernsRootfsSetting = 'auto' | 'idmap' | 'copy';

export interface HandlerProbeInput {
  /** The OCI runtime binary the handler's shim runs (runc when unset). */
  binary?: string;
}

/** `<runtime> features` (OCI runtime features JSON), or an error text. */
async function runtimeFeatures(binary: string): Promise<{ mountOptions: string[]; namespaces: string[] } | string> {
  return new Promise((resolve) => {
    execFile(binary, ['features'], { timeout: 10_000, maxBuffer: 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        resolve(`${binary} features: ${(stderr || err.message).trim()}`);
        return;
      }
      try {
        const v = JSON.parse(stdout) as { mountOptions?: unknown; linux?: { namespaces?: unknown } };
        const strings = (a: unknown): string[] => (Array.isArray(a) ? a.filter((o): o is string => typeof o === 'string') : []);
        resolve({ mountOptions: strings(v.mountOptions), namespaces: strings(v.linux?.namespaces) });
      } catch (e) {
        resolve(`${binary} features: not JSON (${(e as Error).message})`);
      }
    });
  });
}

/*
 * Run inside `unshare --mount --propagation private`, so every mount dies with the process.
 * mount_setattr is syscall 442 on every architecture Node supports (x86_64, arm64: the
 * unified numbering of syscalls added since 5.x). struct mount_attr = 4 × u64.
 */
const RRO_PROBE = String.raw`
use strict;
my $d = shift;
sub run { system(@_) == 0 or do { print "cannot @_\n"; exit 2 } }
run('mount', '-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'berth-probe', $d);
mkdir "$d/a" or die; mkdir "$d/b" or die;
run('mount', '-t', 'tmpfs', '-o', 'size=64k', 'berth-probe', "$d/a");
mkdir "$d/a/sub" or die;
run('mount', '-t', 'tmpfs', '-o', 'size=64k', 'berth-probe', "$d/a/sub");
run('mount', '--rbind', "$d/a", "$d/b");
my $attr = pack('QQQQ', 1, 0, 0, 0);
if (syscall(442, -100, "$d/b", 0x8000, $attr, length($attr)) != 0) { print "mount_setattr: $!\n"; exit 3 }
if (open(my $f, '>', "$d/b/sub/probe")) { print "the submount stayed writable\n"; exit 4 }
if (!$!{EROFS}) { print "writing into the submount: $!\n"; exit 5 }
print "ok\n";
`;

/** Whether the kernel makes a bind read-only recursively (mount_setattr); an error text if not. */
export async function probeKernelRro(scratchParent: string): Promise<true | string> {
  const dir = await mkdtemp(join(scratchParent, 'rro-probe-'));
  try {
    return await new Promise<true | string>((resolve) => {
      const p = spawn('unshare', ['--mount', '--propagation', 'private', 'perl', '-e', RRO_PROBE, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (c: Buffer) => (out += c.toString()));
      p.stderr.on('data', (c: Buffer) => (out += c.toString()));
      const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
      p.once('error', (err) => {
        clearTimeout(timer);
        resolve(`cannot run unshare: ${err.message}`);
      });
      p.once('close', (code) => {
        clearTimeout(timer);
        resolve(code === 0 ? true : `recursive read-only probe: ${out.trim() || `exit ${code}`}`);
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const PROBE_HOST_ID = 1_000_000;

/** A user namespace mapping 0 → PROBE_HOST_ID (one id), held by an `unshare --user sleep`. */
async function throwawayUserns(): Promise<{ path: string; kill(): void } | string> {
  const holder = spawn('unshare', ['--user', 'sleep', '30'], { stdio: 'ignore' });
  holder.on('error', () => undefined);
  const kill = () => void holder.kill('SIGKILL');
  const pid = holder.pid;
  if (pid === undefined) return 'cannot run unshare --user';
  const own = readlinkSync('/proc/self/ns/user');
  const nsOf = (): string => {
    try {
      return readlinkSync(`/proc/${pid}/ns/user`);
    } catch {
      return own; // not there yet
    }
  };
  for (let i = 0; i < 200 && nsOf() === own; i++) await new Promise((r) => setTimeout(r, 10));
  if (nsOf() === own) {
    kill();
    return 'unshare --user did not create a user namespace';
  }
  try {
    writeFileSync(`/proc/${pid}/uid_map`, `0 ${PROBE_HOST_ID} 1\n`);
    writeFileSync(`/proc/${pid}/gid_map`, `0 ${PROBE_HOST_ID} 1\n`);
  } catch (err) {
    kill();
    return `writing the probe's id maps: ${(err as Error).message}`;
  }
  return { path: `/proc/${pid}/ns/user`, kill };
}

/** Whether an idmapped mount maps ids on the state dir's filesystem; an error text if not. */
export async function probeIdmap(stateDir: string): Promise<true | string> {
  const userns = await throwawayUserns();
  if (typeof userns === 'string') return `idmap probe: ${userns}`;
  const src = await mkdtemp(join(stateDir, 'idmap-probe-'));
  let target: string | undefined;
  try {
    writeFileSync(join(src, 'f'), '');
    target = join(idmapRoot(stateDir), `probe-${process.pid}`);
    mkdirSync(target, { mode: 0o700 });
    idmapBind(src, target, userns.path);
    const st = statSync(join(target, 'f'));
    return st.uid === PROBE_HOST_ID && st.gid === PROBE_HOST_ID
      ? true
      : `idmap probe: a root-owned file showed ${st.uid}:${st.gid} through the idmapped mount, not ${PROBE_HOST_ID}`;
  } catch (err) {
    return `idmapped mounts: ${(err as Error).message}`;
  } finally {
    if (target) removeStaging([target]);
    userns.kill();
    await rm(src, { recursive: true, force: true });
  }
}

/**
 * Whether overlayfs takes idmapped lower layers on the snapshots' filesystem (`layersDir`),
 * as a userns container's rootfs is made (cri/container/userns.ts): a layer dir idmapped with
 * a throwaway user namespace, a plain upper and work dir, the overlay mounted on a temp dir;
 * a root-owned lower file must show the mapped owner through it, and a write must land in the
 * upper dir. The staging mount is detached right after the overlay mount (as berthd does once
 * the shim has mounted a rootfs) and the lower must stay readable. An error text if not.
 */
export async function probeIdmappedOverlay(layersDir: string, stateDir: string): Promise<true | string> {
  const userns = await throwawayUserns();
  if (typeof userns === 'string') return `idmapped overlay probe: ${userns}`;
  const dir = await mkdtemp(join(layersDir, 'idmap-overlay-probe-'));
  const staging = join(idmapRoot(stateDir), `probe-overlay-${process.pid}`);
  const merged = join(dir, 'merged');
  let mounted = false;
  try {
    for (const d of ['lower', 'upper', 'work', 'merged']) mkdirSync(join(dir, d), { mode: 0o755 });
    writeFileSync(join(dir, 'lower', 'f'), 'lower');
    mkdirSync(staging, { mode: 0o700 });
    idmapBind(join(dir, 'lower'), staging, userns.path);
    mountAll(
      [{ type: 'overlay', source: 'overlay', options: [`lowerdir=${staging}`, `upperdir=${join(dir, 'upper')}`, `workdir=${join(dir, 'work')}`] }],
      merged,
    );
    mounted = true;
    removeStaging([staging]);
    const st = statSync(join(merged, 'f'));
    if (st.uid !== PROBE_HOST_ID) return `idmapped overlay probe: a root-owned lower file showed uid ${st.uid} through the overlay, not ${PROBE_HOST_ID}`;
    if (readFileSync(join(merged, 'f'), 'utf8') !== 'lower') return 'idmapped overlay probe: the lower file cannot be read once its staging mount is detached';
    writeFileSync(join(merged, 'g'), 'upper');
    return true;
  } catch (err) {
    return `idmapped overlay: ${(err as Error).message}`;
  } finally {
    if (mounted) unmount(merged, { detach: true, all: true });
    removeStaging([staging]);
    userns.kill();
    await rm(dir, { recursive: true, force: true });
  }
}

async function usernsConditions(stateDir: string): Promise<string | undefined> {
  const max = await readFile('/proc/sys/user/max_user_namespaces', 'utf8').catch(() => '');
  if (max.trim() === '0') return 'user namespaces are disabled (user.max_user_namespaces = 0)';
  try {
    await checkUsernsReachable(stateDir);
  } catch (err) {
    return (err as Error).message;
  }
  return undefined;
}

/** The userns rootfs way for config value `setting`, probing overlay over idmapped layers in `layersDir` unless `copy`. */
async function usernsRootfsMode(
  setting: UsernsRootfsSetting,
  layersDir: string | undefined,
  stateDir: string,
  usernsRefused: string | undefined,
): Promise<FeatureReport['usernsRootfs']> {
  if (setting === 'copy') return { mode: 'copy', fallback: false, reason: 'userns_rootfs = "copy" in the config' };
  const probe = usernsRefused ?? (layersDir === undefined ? 'the snapshotter is not overlayfs' : await probeIdmappedOverlay(layersDir, stateDir));
  if (probe === true) return { mode: 'idmap', fallback: setting === 'auto' };
  // "idmap" asked for explicitly: no copy behind the operator's back; containers fail with the kernel's error.
  return setting === 'idmap' ? { mode: 'idmap', fallback: false, reason: probe } : { mode: 'copy', fallback: false, reason: probe };
}

export async function probeFeatures(o: {
  handlers: Record<string, HandlerProbeInput>;
  stateDir: string;
  log: Logger;
  /** overlayfs snapshotter: where the layer dirs are (the idmapped overlay is probed there). */
  layersDir?: string;
  usernsRootfs?: UsernsRootfsSetting;
}): Promise<FeatureReport> {
  const kernelRro = await probeKernelRro(o.stateDir).catch((err: Error) => `recursive read-only probe: ${err.message}`);
  let userns = await usernsConditions(o.stateDir);
  if (!userns) {
    const idmap = await probeIdmap(o.stateDir);
    if (idmap !== true) userns = idmap;
  }
  const byBinary = new Map<string, Promise<{ mountOptions: string[]; namespaces: string[] } | string>>();
  const handlers: Record<string, HandlerFeatures> = {};
  for (const [name, h] of Object.entries(o.handlers)) {
    const binary = h.binary ?? 'runc';
    if (!byBinary.has(binary)) byBinary.set(binary, runtimeFeatures(binary));
    const rf = await byBinary.get(binary)!;
    const reasons: Record<string, string> = {};
    let rro = false;
    if (typeof rf === 'string') reasons.recursive_read_only_mounts = rf;
    else if (!rf.mountOptions.includes('rro')) reasons.recursive_read_only_mounts = `${binary} does not list the rro mount option`;
    else if (kernelRro !== true) reasons.recursive_read_only_mounts = kernelRro;
    else rro = true;
    let usernsOk = false;
    if (userns) reasons.user_namespaces = userns;
    else if (typeof rf === 'string') reasons.user_namespaces = rf;
    else if (!rf.namespaces.includes('user')) reasons.user_namespaces = `${binary} does not list the user namespace`;
    else usernsOk = true;
    handlers[name] = { recursiveReadOnlyMounts: rro, userNamespaces: usernsOk, reasons };
  }
  // Host network with a user namespace: the pod pins no network namespace, its containers bind
  // the host /sys instead of mounting sysfs (oci/mounts.ts); it needs what user namespaces need.
  const usernsRootfs = await usernsRootfsMode(o.usernsRootfs ?? 'auto', o.layersDir, o.stateDir, userns);
  const report: FeatureReport = { handlers, supplementalGroupsPolicy: true, userNamespacesHostNetwork: !userns, mountOptions: true, usernsRootfs };
  o.log.info('runtime handler features', {
    handlers: Object.fromEntries(
      Object.entries(handlers).map(([k, v]) => [k, { rro: v.recursiveReadOnlyMounts, userns: v.userNamespaces, reasons: v.reasons }]),
    ),
  });
  const rootfsLine =
    usernsRootfs.mode === 'idmap'
      ? 'user namespace rootfs: overlay over idmapped image layers'
      : 'user namespace rootfs: ownership-shifted image copy per (image, mapping)';
  if (usernsRootfs.mode === 'idmap' && usernsRootfs.reason)
    o.log.error(`${rootfsLine} (userns_rootfs = "idmap"), but the probe failed: userns containers will fail`, { reason: usernsRootfs.reason });
  else o.log.info(rootfsLine, usernsRootfs.reason ? { reason: usernsRootfs.reason } : {});
  return report;
}
