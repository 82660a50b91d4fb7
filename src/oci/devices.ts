/**
 * CRI devices → linux.devices plus an allow rule in the device cgroup.
 * The caller stats the host path (after resolving its symlinks once) through `statDevice`.
 */
import type { Device } from '../api/cri/runtime/v1/api_pb.js';
import type { LinuxDevice, LinuxDeviceCgroup } from './spec.js';
import { absPath, invalid } from './values.js';

export interface HostDeviceInfo {
  type: 'c' | 'b' | 'p';
  major: number;
  minor: number;
  /** st_mode of the node; only the permission bits are used. */
  mode: number;
  uid: number;
  gid: number;
}

/** Returns the device node at a host path, or undefined when there is none. */
export type StatDevice = (hostPath: string) => HostDeviceInfo | undefined;

export interface DevicePlan {
  devices: LinuxDevice[];
  rules: LinuxDeviceCgroup[];
}

export interface DeviceOwner {
  /** Non-zero values replace the host node's owner (device_ownership_from_security_context). */
  uid?: number;
  gid?: number;
}

const PERMS_RE = /^(?!.*(.).*\1)[rwm]{1,3}$/;

export function planDevices(devices: readonly Device[], statDevice: StatDevice | undefined, owner: DeviceOwner | undefined, field: string): DevicePlan {
  const out: DevicePlan = { devices: [], rules: [] };
  devices.forEach((d, i) => {
    const f = `${field}[${i}]`;
    const hostPath = absPath(d.hostPath, `${f}.host_path`);
    const containerPath = d.containerPath === '' ? hostPath : absPath(d.containerPath, `${f}.container_path`);
    if (!PERMS_RE.test(d.permissions))
      throw invalid(`${f}.permissions`, `${JSON.stringify(d.permissions)} is not a combination of r, w and m`, 'oci.invalid_device');
    if (!statDevice) throw invalid(f, 'devices cannot be resolved here (no device lookup)', 'oci.invalid_device');
    const info = statDevice(hostPath);
    if (!info) throw invalid(`${f}.host_path`, `${JSON.stringify(hostPath)} is not a device node`, 'oci.device_not_found');
    const dev: LinuxDevice = {
      path: containerPath,
      type: info.type,
      major: info.major,
      minor: info.minor,
      fileMode: info.mode & 0o7777,
      uid: owner?.uid ? owner.uid : info.uid,
      gid: owner?.gid ? owner.gid : info.gid,
    };
    out.devices.push(dev);
    // A FIFO has no cgroup rule (the device cgroup only knows char and block devices).
    if (info.type !== 'p') out.rules.push({ allow: true, type: info.type, major: info.major, minor: info.minor, access: d.permissions });
  });
  return out;
}
