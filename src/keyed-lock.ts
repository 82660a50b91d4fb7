/**
 * Serialises async operations per key: one runs at a time per key, in call order; a failed one
 * does not block the next. The one keyed lock of berth (sandbox and container locks in cri/,
 * shim groups in runtime/, CNI setup/teardown per sandbox in network/). Not re-entrant.
 */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    try {
      return await next;
    } finally {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
