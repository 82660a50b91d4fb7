/**
 * Terminal resize messages: a stream of JSON objects `{"Width":W,"Height":H}` (client-go's
 * TerminalSize, encoded one after another, usually newline separated), possibly split across
 * frames. ResizeQueue turns them into the AsyncIterable the backend consumes.
 */
import type { TerminalSize } from './types.js';

/** Upper bound on one buffered resize message; anything bigger is garbage. */
const MAX_PENDING = 4096;

export class ResizeQueue implements AsyncIterable<TerminalSize> {
  private readonly items: TerminalSize[] = [];
  private waiter: (() => void) | undefined;
  private ended = false;
  private pending = '';

  /** Feeds raw bytes from the resize stream/channel. Malformed objects are skipped. */
  write(data: Buffer | string): void {
    this.pending += data.toString();
    for (;;) {
      const start = this.pending.indexOf('{');
      if (start < 0) {
        this.pending = '';
        return;
      }
      const end = this.pending.indexOf('}', start);
      if (end < 0) {
        this.pending = this.pending.slice(start);
        if (this.pending.length > MAX_PENDING) this.pending = '';
        return;
      }
      const text = this.pending.slice(start, end + 1);
      this.pending = this.pending.slice(end + 1);
      const size = parseSize(text);
      if (size) this.push(size);
    }
  }

  push(size: TerminalSize): void {
    if (this.ended) return;
    this.items.push(size);
    this.wakeUp();
  }

  end(): void {
    this.ended = true;
    this.wakeUp();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<TerminalSize> {
    for (;;) {
      const next = this.items.shift();
      if (next) {
        yield next;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  private wakeUp(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}

function parseSize(text: string): TerminalSize | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const width = o.Width ?? o.width;
  const height = o.Height ?? o.height;
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffff;
  return ok(width) && ok(height) ? { width, height } : undefined;
}
