/**
 * Single-use, expiring tokens for cached CRI streaming requests (kubelet's request cache):
 * GetExec/GetAttach/GetPortForward store the request under a random token and hand out a URL;
 * the first connection to that URL consumes it.
 */
import { randomBytes } from 'node:crypto';
import { errors } from '../errors.js';
import type { CachedRequest } from './types.js';

interface Entry {
  request: CachedRequest;
  expiresAt: number;
}

export class RequestCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxInFlight = 1000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Stores a request; returns its token (128 random bits, base64url). */
  insert(request: CachedRequest): string {
    this.evictExpired();
    if (this.entries.size >= this.maxInFlight) {
      throw errors.resourceExhausted('streaming.too_many_requests', `${this.maxInFlight} streaming requests already waiting for a client`);
    }
    const token = randomBytes(16).toString('base64url');
    this.entries.set(token, { request, expiresAt: this.now() + this.ttlMs });
    return token;
  }

  /** Removes and returns the request; undefined when unknown, already used or expired. */
  consume(token: string): CachedRequest | undefined {
    const entry = this.entries.get(token);
    if (!entry) return undefined;
    this.entries.delete(token);
    return entry.expiresAt > this.now() ? entry.request : undefined;
  }

  get size(): number {
    return this.entries.size;
  }

  private evictExpired(): void {
    const now = this.now();
    for (const [token, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(token);
  }
}
