/**
 * Whole encoded answers of a list RPC by filter (ListPodSandbox, ListContainers), for the
 * kubelet's relisting every second. Filters come from clients, so the cache is bounded: at most
 * `max` answers, the least recently used going first (a client cycling filters cannot push the
 * kubelet's one or two out for long), and a key longer than `keyMax` (a label selector may be
 * megabytes, up to the 16 MiB request limit) is answered but never kept. An answer is valid
 * under a `validity` string (the store's generation, …); a stale one is replaced on its next
 * use and dropped first when the cache is full.
 */
import type { EncodedResponse } from './grpc.js';

export class AnswerCache {
  private readonly m = new Map<string, { validity: string; res: EncodedResponse }>();

  constructor(
    private readonly max = 32,
    private readonly keyMax = 4096,
  ) {}

  /** The answer kept under `key` if it is still valid (it becomes the most recently used). */
  get(key: string, validity: string): EncodedResponse | undefined {
    const hit = this.m.get(key);
    if (!hit || hit.validity !== validity) return undefined;
    this.m.delete(key);
    this.m.set(key, hit);
    return hit.res;
  }

  set(key: string, validity: string, res: EncodedResponse): void {
    this.m.delete(key);
    if (key.length > this.keyMax) return;
    if (this.m.size >= this.max) for (const [k, v] of this.m) if (v.validity !== validity) this.m.delete(k);
    for (const k of this.m.keys()) {
      if (this.m.size < this.max) break;
      this.m.delete(k);
    }
    this.m.set(key, { validity, res });
  }

  /** Entries kept and the characters of their keys: for tests. */
  held(): { entries: number; keyChars: number } {
    let keyChars = 0;
    for (const k of this.m.keys()) keyChars += k.length;
    return { entries: this.m.size, keyChars };
  }
}
