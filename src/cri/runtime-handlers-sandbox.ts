/** RuntimeService handlers for the sandbox RPCs (filled in as they are built). */
import type { RuntimeHandlers } from './server.js';
import type { RuntimeContext } from './runtime-context.js';

export function sandboxHandlers(_ctx: RuntimeContext): RuntimeHandlers {
  return {};
}
