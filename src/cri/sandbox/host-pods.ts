/**
 * The real PodHostPort: the pod's pinned namespaces and netns handle (network/) and its /dev/shm
 * tmpfs (mount(2), sandbox/files.ts). daemon/services.ts puts it in the RuntimeContext; unit
 * tests use a fake instead (test/helpers/fakes/).
 */
import { NetnsDirs, pinNamespaces, pinsAlive, removeNetns, unpinNamespaces } from '../../network/index.js';
import type { PodHostPort } from '../server/ports.js';
import { mountShmTmpfs, unmountShmTmpfs } from './files.js';

/** One per RuntimeContext: it remembers the netns directories it has prepared. */
export function hostPods(): PodHostPort {
  const dirs = new NetnsDirs();
  return {
    pin: (req) => pinNamespaces(req, dirs),
    unpin: (pins) => unpinNamespaces(pins),
    alive: (pins) => pinsAlive(pins),
    removeNetns: (path) => removeNetns(path),
    mountShm: (path) => mountShmTmpfs(path),
    unmountShm: (path) => unmountShmTmpfs(path),
  };
}
