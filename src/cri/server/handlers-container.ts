/** RuntimeService handlers for the container RPCs. */
import type { RuntimeHandlers } from './server.js';
import type { RuntimeContext } from './runtime-context.js';
import { createContainer } from '../container/create.js';
import { startContainer } from '../container/start.js';
import { stopContainer } from '../container/stop.js';
import { removeContainer } from '../container/remove.js';
import { containerStatus } from '../container/status.js';
import { listContainers, streamContainers } from '../container/list.js';
import { updateContainerResources } from '../container/update.js';
import { reopenContainerLog } from '../container/reopen-log.js';

export function containerHandlers(ctx: RuntimeContext): RuntimeHandlers {
  return {
    createContainer: createContainer(ctx),
    startContainer: startContainer(ctx),
    stopContainer: stopContainer(ctx),
    removeContainer: removeContainer(ctx),
    containerStatus: containerStatus(ctx),
    listContainers: listContainers(ctx),
    streamContainers: streamContainers(ctx),
    updateContainerResources: updateContainerResources(ctx),
    reopenContainerLog: reopenContainerLog(ctx),
  };
}
