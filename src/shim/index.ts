/**
 * Public surface of berth-shim for tests. The shim itself is started as a process
 * (bin/berth-shim, bin/containerd-shim-berth-v1); in-process use is for tests only. What
 * berthd and the shim agree on lives in ../shim-protocol.ts, not here.
 */
export { parseFlags } from './cli.js';
export { serve, type ServeOptions, type RunningShim } from './server.js';
export { Topics, type Topic } from './events.js';
