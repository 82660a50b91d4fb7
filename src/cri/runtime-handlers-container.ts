/** RuntimeService handlers for the container RPCs (filled in as they are built). */
import type { RuntimeHandlers } from './server.js';
import type { RuntimeContext } from './runtime-context.js';

export function containerHandlers(_ctx: RuntimeContext): RuntimeHandlers {
  return {};
}
