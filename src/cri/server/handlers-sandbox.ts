/** RuntimeService handlers for the pod sandbox RPCs and RuntimeConfig. */
import type { RuntimeHandlers } from './server.js';
import type { RuntimeContext } from './runtime-context.js';
import { runPodSandbox } from '../sandbox/run.js';
import { stopPodSandbox } from '../sandbox/stop.js';
import { removePodSandbox } from '../sandbox/remove.js';
import { podSandboxStatus } from '../sandbox/status.js';
import { listPodSandbox, streamPodSandboxes } from '../sandbox/list.js';
import { updatePodSandboxResources } from '../sandbox/update-resources.js';
import { runtimeConfig, updateRuntimeConfig } from '../runtime-config.js';

export function sandboxHandlers(ctx: RuntimeContext): RuntimeHandlers {
  return {
    runPodSandbox: runPodSandbox(ctx),
    stopPodSandbox: stopPodSandbox(ctx),
    removePodSandbox: removePodSandbox(ctx),
    podSandboxStatus: podSandboxStatus(ctx),
    listPodSandbox: listPodSandbox(ctx),
    streamPodSandboxes: streamPodSandboxes(ctx),
    updatePodSandboxResources: updatePodSandboxResources(ctx),
    runtimeConfig: runtimeConfig(ctx),
    updateRuntimeConfig: updateRuntimeConfig(ctx),
  };
}
