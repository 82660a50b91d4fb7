/** RuntimeService/Version. */
import type { RuntimeHandlers } from './server/server.js';
import { BERTH_VERSION } from '../version.js';

/**
 * VersionResponse.version: the version of the kubelet runtime API the runtime speaks, a fixed
 * value of the CRI ("0.1.0", as containerd and CRI-O answer), not berth's own version.
 */
export const KUBE_RUNTIME_API_VERSION = '0.1.0';

export const version = (): NonNullable<RuntimeHandlers['version']> => async () => ({
  version: KUBE_RUNTIME_API_VERSION,
  runtimeName: 'berth',
  runtimeVersion: BERTH_VERSION,
  runtimeApiVersion: 'v1',
});
