/**
 * The real PodHostPort: the pod's pinned namespaces and netns handle (network/) and its /dev/shm
 * tmpfs (mount(2), sandbox/files.ts). daemon/services.ts puts it in the RuntimeContext; unit
 * tests use a fake instead (test/helpers/fakes/).
 */
import { pinNamespaces, pinsAlive, removeNetns, unpinNamespaces } from '../../network/index.js';
import type { PodHostPort } from '../server/ports.js';
import { mountShmTmpfs, unmountShmTmpfs } from './files.js';

export function hostPods(): PodHostPort {
  return {
    pin: (req) => pinNamespaces(req),
    unpin: (pins) => unpinNamespaces(pins),
    alive: (pins) => pinsAlive(pins),
    removeNetns: (path) => removeNetns(path),
    mountShm: (path) => mountShmTmpfs(path),
    unmountShm: (path) => unmountShmTmpfs(path),
  };
}
