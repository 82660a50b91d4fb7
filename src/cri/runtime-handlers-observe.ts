/** RuntimeService handlers for the observe RPCs (filled in as they are built). */
import type { RuntimeHandlers } from './server.js';
import type { RuntimeContext } from './runtime-context.js';

export function observeHandlers(_ctx: RuntimeContext): RuntimeHandlers {
  return {};
}
