/**
 * Observing image pulls without touching the image service: a subscriber of its diagnostics
 * channel (core/images/service.ts `pullChannel`), for one service.
 */
import { pullChannel, type ImageService, type PullObservation } from '../core/images/service.js';

export type { PullObservation };

/** Calls `fn` for every pull() of `images` once it settles; returns the unsubscribe. */
export function observePulls(images: ImageService, fn: (o: PullObservation) => void): () => void {
  const onMessage = (msg: unknown): void => {
    const o = msg as PullObservation;
    if (o.service !== images) return;
    try {
      fn(o);
    } catch {
      // An observer must never fail a pull.
    }
  };
  pullChannel.subscribe(onMessage);
  return () => {
    pullChannel.unsubscribe(onMessage);
  };
}
