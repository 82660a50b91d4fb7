/**
 * Coalesces the frames written during one tick into a single writev: the first write corks
 * the stream and a nextTick uncorks it. Under load (many responses finishing together) this
 * cuts syscalls; a lone call pays no extra latency, since nextTick runs before any I/O.
 */

import type { Writable } from 'node:stream';

export class FrameWriter {
  private corked = false;

  constructor(private readonly stream: Writable) {}

  write(frame: Buffer): void {
    if (this.stream.destroyed) return;
    if (!this.corked) {
      this.corked = true;
      this.stream.cork();
      process.nextTick(() => {
        this.corked = false;
        this.stream.uncork();
      });
    }
    this.stream.write(frame);
  }
}
