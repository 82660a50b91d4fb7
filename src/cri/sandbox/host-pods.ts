/**
 * The real PodHostPort: the pod's pinned namespaces and netns handle (network/) and its /dev/shm
 * tmpfs (mount(2), sandbox/files.ts). daemon/services.ts puts it in the RuntimeContext; unit
 * tests use a fake instead (test/helpers/fakes/).
 */
import { NetnsDirs, PinPool, pinNamespaces, pinsAlive, removeNetns, unpinNamespaces } from '../../network/index.js';
import type { PodHostPort } from '../server/ports.js';
import { mountShmTmpfs, unmountShmTmpfs } from './files.js';

/**
 * One per RuntimeContext: it remembers the netns directories it has prepared, and keeps one
 * spare pin program ready (network/pin.ts PinPool).
 */
export function hostPods(): PodHostPort {
  const dirs = new NetnsDirs();
  const pool = new PinPool();
  return {
    pin: (req) => pinNamespaces(req, dirs, pool),
    unpin: (pins) => unpinNamespaces(pins),
    alive: (pins) => pinsAlive(pins),
    removeNetns: (path) => removeNetns(path),
    mountShm: (path) => mountShmTmpfs(path),
    unmountShm: (path) => unmountShmTmpfs(path),
  };
}
