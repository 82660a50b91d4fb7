/** Observing image pulls without touching the image service: its pull() is wrapped once. */
import type { ImageService } from '../core/images/service.js';

export interface PullObservation {
  ref: string;
  ok: boolean;
  /** Image size (manifest + config + compressed layers) on success, else 0. */
  bytes: number;
  /** Unix milliseconds (fractional). */
  startMs: number;
  durationMs: number;
  error?: string;
}

const wrapped = new WeakSet<ImageService>();

export function observePulls(images: ImageService, fn: (o: PullObservation) => void): void {
  if (wrapped.has(images)) throw new Error('image pulls are already observed');
  wrapped.add(images);
  const pull = images.pull.bind(images);
  images.pull = async (...args: Parameters<ImageService['pull']>) => {
    const startMs = performance.timeOrigin + performance.now();
    const t0 = performance.now();
    try {
      const img = await pull(...args);
      safe(fn, { ref: args[1], ok: true, bytes: img.size, startMs, durationMs: performance.now() - t0 });
      return img;
    } catch (err) {
      safe(fn, { ref: args[1], ok: false, bytes: 0, startMs, durationMs: performance.now() - t0, error: (err as Error).message });
      throw err;
    }
  };
}

function safe(fn: (o: PullObservation) => void, o: PullObservation): void {
  try {
    fn(o);
  } catch {
    // An observer must never fail a pull.
  }
}
