/** berthd start: reconcile sandbox and container records with the tasks that are really alive. */
import type { RecoveredTask } from '../runtime/index.js';
import type { RuntimeContext } from './runtime-context.js';

export async function recover(_ctx: RuntimeContext, _recovered: RecoveredTask[]): Promise<void> {
  // Filled in with the sandbox/container RPCs.
}
