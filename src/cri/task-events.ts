/** Task events (exit, OOM) → sandbox and container records; registered before recovery. */
import type { RuntimeContext } from './runtime-context.js';

export function watchTasks(_ctx: RuntimeContext): void {
  // Filled in with the container RPCs.
}
