/** Public surface of berth's daemon-side task layer. */
export { TaskManager, PROCESS_TYPE_URL, RESOURCES_TYPE_URL, type TaskManagerOptions } from './task-manager.js';
export { EventReceiver, dispatchEnvelope } from './events.js';
export { shimBinaryName, resolveShimBinary, parseShimAddress, runtimeOptions } from './shim-binary.js';
export { decodeMetrics, type TaskMetrics } from './stats.js';
export { bundlePaths, checkName, makeFifo } from './bundle.js';
export * from './types.js';
