/**
 * Host facts for container spec generation: bind mount sources resolved once (symlinks
 * followed, missing directories created as containerd does), device nodes, mount propagation.
 */
import { mkdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { clone } from '@bufbuild/protobuf';
import { ContainerConfigSchema, type ContainerConfig } from '../../api/cri/runtime/v1/api_pb.js';
import { errors } from '../../errors.js';
import { ALL_CAPABILITIES, type HostDeviceInfo, type StatDevice, type PropagationLookup } from '../../oci/index.js';

/** A copy of `config` whose mount host paths are resolved (created as directories when absent). */
export function resolveHostMounts(config: ContainerConfig): ContainerConfig {
  const out = clone(ContainerConfigSchema, config);
  out.mounts.forEach((m, i) => {
    const field = `config.mounts[${i}].host_path`;
    if (m.hostPath === '' || !m.hostPath.startsWith('/'))
      throw errors.invalidArgument('container.bad_mount', `${field} must be an absolute path, got ${JSON.stringify(m.hostPath)}`);
    try {
      m.hostPath = realpathSync(m.hostPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        throw errors.invalidArgument('container.bad_mount', `${field} ${m.hostPath}: ${(err as Error).message}`);
      try {
        mkdirSync(m.hostPath, { recursive: true, mode: 0o755 });
        m.hostPath = realpathSync(m.hostPath);
      } catch (e) {
        throw errors.invalidArgument('container.bad_mount', `${field} ${m.hostPath}: cannot create: ${(e as Error).message}`);
      }
    }
  });
  return out;
}

/** Linux dev_t → major/minor (glibc's encoding). */
function splitDev(rdev: bigint): { major: number; minor: number } {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return { major, minor };
}

export const statDevice: StatDevice = (hostPath: string): HostDeviceInfo | undefined => {
  let st;
  try {
    st = statSync(realpathSync(hostPath), { bigint: true });
  } catch {
    return undefined;
  }
  const type = st.isCharacterDevice() ? 'c' : st.isBlockDevice() ? 'b' : st.isFIFO() ? 'p' : undefined;
  if (!type) return undefined;
  const { major, minor } = type === 'p' ? { major: 0, minor: 0 } : splitDev(st.rdev);
  return { type, major, minor, mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid) };
};

/** Unescapes the octal escapes of /proc/self/mountinfo paths. */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Propagation of the mount that holds `hostPath` (longest mount point prefix). */
export const lookupPropagation: PropagationLookup = (hostPath: string) => {
  let best = '';
  let result: 'shared' | 'slave' | 'private' = 'private';
  const text = readFileSync('/proc/self/mountinfo', 'utf8');
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length < 7) continue;
    const mp = unescapeMountPath(f[4]!);
    const inside = mp === '/' || hostPath === mp || hostPath.startsWith(mp + '/');
    if (!inside || mp.length < best.length) continue;
    best = mp;
    const optional = f.slice(6, f.indexOf('-'));
    result = optional.some((o) => o.startsWith('shared:')) ? 'shared' : optional.some((o) => o.startsWith('master:')) ? 'slave' : 'private';
  }
  return result;
};

// Process-wide: the capabilities of this process (read once from /proc/self/status).
let currentCaps: string[] | undefined;

/**
 * The capabilities berthd itself holds (CapEff), as containerd's privileged containers get
 * "all current capabilities": asking runc for one berthd lacks (this node has no
 * CAP_SYS_RESOURCE) makes container creation fail with EPERM.
 */
export function currentCapabilities(): string[] {
  if (currentCaps) return currentCaps;
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
  const mask = BigInt(`0x${hex}`);
  currentCaps = ALL_CAPABILITIES.filter((_, i) => ((mask >> BigInt(i)) & 1n) === 1n);
  return currentCaps;
}
