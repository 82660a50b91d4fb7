/**
 * Public surface of berth-shim for berthd (runtime/) and tests. The shim itself is started as a
 * process (bin/berth-shim, bin/containerd-shim-berth-v1); in-process use is for tests only.
 *
 * Conventions berthd relies on:
 *  - CRI containers: bundle annotation CRI_CONTAINER_TYPE present + stdout/stderr
 *    "file://<kubelet log path>" → the shim writes the CRI log format to that file.
 *  - Log rotation: Update{annotations: {[REOPEN_LOG_ANNOTATION]: "true"}} reopens the file.
 *  - Grouping: SANDBOX_ID_ANNOTATION in the bundle groups a pod's containers in one shim;
 *    env BERTH_SHIM_GROUP=node groups all; env BERTH_SHIM_STATE_DIR sets the socket dir and
 *    BERTH_RUNC_ROOT the runc --root base (default /run/berth/runc; <ns> is appended).
 *  - Warm shims: `berth-shim -namespace NS -socket <dir>/warm-X.sock serve` (writes "ok" on fd 3);
 *    adopt by renaming the socket to socketPath(dir, ns, groupKey(...)) and writing <sock>.pid.
 */
export { CRI_CONTAINER_TYPE, REOPEN_LOG_ANNOTATION } from './container.js';
export { SANDBOX_ID_ANNOTATION, groupKey, socketPath, stateDir, parseFlags } from './cli.js';
export { serve, type ServeOptions, type RunningShim } from './server.js';
export { Topics, type Topic } from './events.js';
