/** RuntimeService/Version. */
import type { RuntimeHandlers } from './server/server.js';
import { BERTH_VERSION } from '../version.js';

export const version = (): NonNullable<RuntimeHandlers['version']> => async () => ({
  version: '0.1.0',
  runtimeName: 'berth',
  runtimeVersion: BERTH_VERSION,
  runtimeApiVersion: 'v1',
});
