/**
 * RuntimeService handlers for the observe RPCs: exec/attach/port-forward URLs, ExecSync,
 * stats and CRI metrics, container events, checkpoint.
 */
import type { RuntimeHandlers } from './server.js';
import type { RuntimeContext } from './runtime-context.js';
import { exec } from '../stream/exec.js';
import { execSync } from '../stream/exec-sync.js';
import { attach } from '../stream/attach.js';
import { portForward } from '../stream/port-forward.js';
import { containerStats, listContainerStats, streamContainerStats } from '../observe/container-stats.js';
import { listPodSandboxStats, podSandboxStats, streamPodSandboxStats } from '../observe/sandbox-stats.js';
import { listMetricDescriptors, listPodSandboxMetrics, streamPodSandboxMetrics } from '../observe/metrics-cri.js';
import { getContainerEvents } from '../container/events.js';
import { checkpointContainer } from '../container/checkpoint.js';

export function observeHandlers(ctx: RuntimeContext): RuntimeHandlers {
  return {
    exec: exec(ctx),
    execSync: execSync(ctx),
    attach: attach(ctx),
    portForward: portForward(ctx),
    containerStats: containerStats(ctx),
    listContainerStats: listContainerStats(ctx),
    streamContainerStats: streamContainerStats(ctx),
    podSandboxStats: podSandboxStats(ctx),
    listPodSandboxStats: listPodSandboxStats(ctx),
    streamPodSandboxStats: streamPodSandboxStats(ctx),
    listMetricDescriptors: listMetricDescriptors(ctx),
    listPodSandboxMetrics: listPodSandboxMetrics(ctx),
    streamPodSandboxMetrics: streamPodSandboxMetrics(ctx),
    getContainerEvents: getContainerEvents(ctx),
    checkpointContainer: checkpointContainer(ctx),
  };
}
