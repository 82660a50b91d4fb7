/** The streaming server's backend: exec/attach through the task layer, port-forward into the pod netns. */
import type { StreamingBackend } from '../streaming/index.js';
import { errors } from '../errors.js';
import type { RuntimeContext } from './runtime-context.js';

export function createStreamingBackend(_getCtx: () => RuntimeContext): StreamingBackend {
  const no = async (): Promise<never> => {
    throw errors.unimplemented('streaming.backend', 'streaming backend not implemented yet');
  };
  return { exec: no, attach: no, portForward: no };
}
