/**
 * Applies the containerEdits of resolved CDI devices to a generated OCI spec, as the CDI
 * reference does: for each device in request order, its spec file's top-level edits (once per
 * file) and then the device's own.
 *
 * - env: replaces a variable of the same name, else appended.
 * - deviceNodes: type, major/minor and fileMode come from the host node when the spec leaves
 *   them out (a node given with type and major, or a FIFO, needs no host node); uid/gid default
 *   to the process's when non-zero; a device at the same container path is replaced. Block
 *   and char devices ("u" is a char device) get a device cgroup allow rule with the
 *   permissions ("" = rwm, "none" = no rule).
 *   In a container with its own user namespace a node whose host path differs from its
 *   container path becomes a bind mount of the host node (runc binds nodes there, from the
 *   container path).
 * - mounts: a mount at the same destination is replaced; bind sources are resolved once
 *   (symlinks followed) and must exist; the mount list is then ordered by depth (stable).
 * - hooks: appended to their OCI hook list.
 * - additionalGids: added once each; 0 is ignored.
 * - intelRdt: closID, l3CacheSchema, memBwSchema set. What runc 1.1 cannot do (netDevices,
 *   intelRdt schemata/enableMonitoring) is refused, never dropped.
 *
 * Host facts come in through `CdiHost`; nothing here touches the filesystem itself.
 */
import { posix } from 'node:path';
import { berthError, type ErrorCode } from '../errors.js';
import type { StatDevice } from '../oci/devices.js';
import type { Hook, LinuxDevice, Mount, Spec } from '../oci/spec.js';
import type { ResolvedDevice } from './registry.js';
import type { ContainerEdits, DeviceNode } from './spec-file.js';

export interface CdiHost {
  statDevice: StatDevice;
  /** The path with its symlinks resolved, or undefined when it does not exist. */
  realpath(path: string): string | undefined;
}

const depth = (p: string): number => {
  const c = posix.normalize(p);
  return c === '/' ? 0 : c.replace(/\/$/, '').split('/').length - 1;
};

function normalizeAccess(perms: string): string {
  return ['r', 'w', 'm'].filter((c) => perms.includes(c)).join('');
}

export function applyCdiEdits(spec: Spec, resolved: readonly ResolvedDevice[], host: CdiHost): void {
  const specsDone = new Set<string>();
  let mountsChanged = false;
  const env = spec.process?.env ?? [];
  const userns = spec.linux?.namespaces?.some((n) => n.type === 'user') ?? false;
  for (const r of resolved) {
    const steps: { edits: ContainerEdits; where: string }[] = [];
    if (!specsDone.has(r.spec.path)) {
      specsDone.add(r.spec.path);
      steps.push({ edits: r.spec.containerEdits, where: `${r.spec.path}: containerEdits` });
    }
    steps.push({ edits: r.device.containerEdits, where: `${r.spec.path}: device ${JSON.stringify(r.device.name)} containerEdits` });
    for (const { edits, where } of steps) {
      const fail = (code: ErrorCode, what: string): never => {
        throw berthError(code, `CDI device ${JSON.stringify(r.name)} (${where}): ${what}`);
      };
      if (edits.netDevices?.length) fail('cdi.unsupported', 'netDevices cannot be applied: runc 1.1 does not move network interfaces');
      if (edits.intelRdt && (edits.intelRdt.schemata !== undefined || edits.intelRdt.enableMonitoring)) {
        fail('cdi.unsupported', 'intelRdt schemata/enableMonitoring cannot be applied: runc 1.1 does not support them');
      }

      for (const e of edits.env ?? []) {
        const key = e.slice(0, e.indexOf('='));
        const at = env.findIndex((x) => x === key || x.startsWith(`${key}=`));
        if (at >= 0) env[at] = e;
        else env.push(e);
      }

      (edits.deviceNodes ?? []).forEach((dn, i) => {
        const dev = deviceFromNode(
          dn,
          host,
          (what) => fail('cdi.host_device', `deviceNodes[${i}]: ${what}`),
          (what) => fail('cdi.invalid_device', `deviceNodes[${i}]: ${what}`),
        );
        const user = spec.process?.user;
        if (dev.uid === undefined && user && user.uid > 0) dev.uid = user.uid;
        if (dev.gid === undefined && user && user.gid > 0) dev.gid = user.gid;
        const linux = (spec.linux ??= {});
        const devices = (linux.devices ??= []);
        const at = devices.findIndex((d) => d.path === dev.path);
        if (at >= 0) devices.splice(at, 1);
        const hostPath = dn.hostPath !== undefined && dn.hostPath !== '' ? dn.hostPath : dn.path;
        if (userns && hostPath !== dn.path) {
          // In a user namespace runc cannot mknod and binds the host node at the *container*
          // path instead; a node whose host path differs is bound from its host path here.
          const real = host.realpath(hostPath);
          if (real === undefined) fail('cdi.host_device', `deviceNodes[${i}]: host device ${JSON.stringify(hostPath)} does not exist`);
          const mounts = (spec.mounts ??= []);
          const mat = mounts.findIndex((x) => x.destination === dn.path);
          if (mat >= 0) mounts.splice(mat, 1);
          mounts.push({ destination: dn.path, type: 'bind', source: real!, options: ['bind', 'nosuid', 'noexec'] });
          mountsChanged = true;
        } else {
          if (userns && dev.type !== 'p' && host.statDevice(hostPath) === undefined) {
            fail(
              'cdi.host_device',
              `deviceNodes[${i}]: host device ${JSON.stringify(hostPath)} does not exist (in a user namespace runc binds device nodes from the host)`,
            );
          }
          devices.push(dev);
        }
        const perms = dn.permissions ?? '';
        if (dev.type !== 'p' && perms !== 'none') {
          const resources = (linux.resources ??= {});
          (resources.devices ??= []).push({
            allow: true,
            type: dev.type === 'b' ? 'b' : 'c',
            major: dev.major,
            minor: dev.minor,
            access: perms === '' ? 'rwm' : normalizeAccess(perms),
          });
        }
      });

      (edits.mounts ?? []).forEach((m, i) => {
        const options = [...(m.options ?? [])];
        const bind = options.includes('bind') || options.includes('rbind') || m.type === 'bind';
        let source = m.hostPath;
        if (bind) {
          if (!m.hostPath.startsWith('/')) fail('cdi.invalid_mount', `mounts[${i}]: bind source ${JSON.stringify(m.hostPath)} must be an absolute path`);
          const real = host.realpath(m.hostPath);
          if (real === undefined) fail('cdi.host_path', `mounts[${i}]: host path ${JSON.stringify(m.hostPath)} does not exist`);
          source = real!;
        }
        const type = m.type !== undefined && m.type !== '' ? m.type : bind ? 'bind' : undefined;
        const mount: Mount = { destination: m.containerPath, ...(type ? { type } : {}), source, options };
        const mounts = (spec.mounts ??= []);
        const at = mounts.findIndex((x) => x.destination === m.containerPath);
        if (at >= 0) mounts.splice(at, 1);
        mounts.push(mount);
        mountsChanged = true;
      });

      for (const h of edits.hooks ?? []) {
        const hook: Hook = { path: h.path };
        if (h.args) hook.args = [...h.args];
        if (h.env) hook.env = [...h.env];
        if (h.timeout !== undefined) hook.timeout = h.timeout;
        const hooks = (spec.hooks ??= {});
        (hooks[h.hookName] ??= []).push(hook);
      }

      if (edits.intelRdt) {
        const { closID, l3CacheSchema, memBwSchema } = edits.intelRdt;
        const rdt = { ...(closID ? { closID } : {}), ...(l3CacheSchema ? { l3CacheSchema } : {}), ...(memBwSchema ? { memBwSchema } : {}) };
        (spec.linux ??= {}).intelRdt = rdt;
      }

      for (const gid of edits.additionalGids ?? []) {
        if (gid === 0 || !spec.process) continue;
        const gids = (spec.process.user.additionalGids ??= []);
        if (!gids.includes(gid)) gids.push(gid);
      }
    }
  }
  if (spec.process && env.length > 0) spec.process.env = env;
  if (mountsChanged && spec.mounts) {
    // Stable: mounts of equal depth keep their order, parents come before children.
    spec.mounts = spec.mounts
      .map((m, i) => ({ m, i, d: depth(m.destination) }))
      .sort((a, b) => a.d - b.d || a.i - b.i)
      .map((x) => x.m);
  }
}

function deviceFromNode(dn: DeviceNode, host: CdiHost, missing: (what: string) => never, bad: (what: string) => never): LinuxDevice {
  const hostPath = dn.hostPath !== undefined && dn.hostPath !== '' ? dn.hostPath : dn.path;
  const type = dn.type ?? '';
  const major = dn.major ?? 0;
  const minor = dn.minor ?? 0;
  // As the CDI reference: a node given with its type and major (or a FIFO) needs no host node.
  const minimal = type !== '' && (major !== 0 || type === 'p');
  const info = host.statDevice(hostPath);
  if (!info && !minimal) missing(`host device ${JSON.stringify(hostPath)} is not a device node (and the spec gives no type and major)`);
  const dev: LinuxDevice = { path: dn.path, type: (type || info!.type) as LinuxDevice['type'], major, minor };
  if (!minimal) {
    const hostType = info!.type;
    const same = dev.type === hostType || (dev.type === 'u' && hostType === 'c');
    if (!same) bad(`type ${JSON.stringify(dev.type)} does not match the host device ${JSON.stringify(hostPath)} (type ${JSON.stringify(hostType)})`);
    if (dev.type !== 'p' && major === 0) {
      dev.major = info!.major;
      dev.minor = info!.minor;
    }
  }
  const fileMode = dn.fileMode ?? (info ? info.mode & 0o7777 : undefined);
  if (fileMode !== undefined) dev.fileMode = fileMode;
  if (dn.uid !== undefined) dev.uid = dn.uid;
  if (dn.gid !== undefined) dev.gid = dn.gid;
  return dev;
}
