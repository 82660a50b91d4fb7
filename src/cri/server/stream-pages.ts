/**
 * The streaming list RPCs of cri-api 0.36 (KEP-5825, StreamPodSandboxes & co.): the same
 * items and filters as their unary twin, sent in pages so no single message meets the gRPC
 * size limit. Each item goes in exactly one page; no items means no page (the stream just
 * ends); kubelet collects the pages until EOF.
 */
import type { CallContext } from './instrument.js';

/** Items per page: a page of 100 containers or stats stays far below kubelet's 16 MiB limit. */
export const STREAM_PAGE_SIZE = 100;

export async function writePages<T, M>(
  items: readonly T[],
  page: (items: T[]) => M,
  write: (msg: M) => boolean,
  ctx: CallContext,
  size = STREAM_PAGE_SIZE,
): Promise<void> {
  for (let i = 0; i < items.length; i += size) {
    if (ctx.signal.aborted) return;
    write(page(items.slice(i, i + size)));
  }
}
