/**
 * One HTTP exchange with a registry, on undici: bounded retries with exponential backoff for
 * transient failures, manual redirects (so the Authorization header is dropped when a
 * redirect leaves the origin, and the scheme policy applies to every hop), capped body reads.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import { BerthError, errors } from '../errors.js';
import type { Logger } from '../log.js';
import type { RegistryHosts } from './hosts.js';

export interface RetryPolicy {
  /** Total attempts per exchange, including the first. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 250, maxDelayMs: 5000 };
const MAX_REDIRECTS = 5;

export interface HttpRequest {
  method: 'GET' | 'HEAD' | 'POST';
  url: URL;
  headers: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
  /** The URL that produced this response, after redirects. */
  url: URL;
}

/** Network errors worth another try: the peer was there but the exchange broke. */
const RETRYABLE_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNABORTED',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

export function errorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 4 && e instanceof Error; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = e.cause;
  }
  return undefined;
}

export function isRetryableNetworkError(err: unknown): boolean {
  const code = errorCode(err);
  return code !== undefined && RETRYABLE_CODES.has(code);
}

export function header(headers: HttpResponse['headers'], name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

export function headerAll(headers: HttpResponse['headers'], name: string): string[] {
  const v = headers[name.toLowerCase()];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function canceled(signal: AbortSignal | undefined): BerthError {
  return errors.canceled('registry.canceled', `registry request canceled${signal?.reason instanceof Error ? `: ${signal.reason.message}` : ''}`);
}

/**
 * Read a body to a Buffer, failing as soon as it exceeds `cap` bytes (the body is destroyed,
 * the rest never read). `tooLarge` builds the error so callers can name what was read.
 */
export async function readCapped(body: HttpResponse['body'], cap: number, tooLarge: () => BerthError): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > cap) {
      abandon(body);
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/**
 * Stop reading a body and release its connection. undici emits an AbortError on a destroyed
 * body; without a listener that would be an uncaught exception, so one is attached first.
 */
export function abandon(body: HttpResponse['body']): void {
  body.on('error', () => {});
  body.destroy();
}

/** Drain and discard a body without waiting on a huge one. */
export async function discard(body: HttpResponse['body']): Promise<void> {
  try {
    await body.dump({ limit: 64 * 1024 });
  } catch {
    abandon(body);
  }
}

export interface TransportOptions {
  hosts: RegistryHosts;
  logger: Logger;
  userAgent: string;
  retry?: Partial<RetryPolicy>;
  /** Injected dispatcher (tests); by default an Agent with the timeouts below. */
  dispatcher?: Dispatcher;
  connectTimeoutMs?: number;
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
}

export class Transport {
  private readonly hosts: RegistryHosts;
  private readonly logger: Logger;
  private readonly userAgent: string;
  readonly retry: RetryPolicy;
  /**
   * undici is loaded with the first request: it is ~3.6 MiB of V8 heap that an idle berthd,
   * or one restarted on a node whose images are all present, never needs (issue 14, idle PSS).
   */
  private dispatcher: Promise<Dispatcher> | undefined;
  private readonly makeDispatcher: () => Promise<Dispatcher>;
  private readonly ownsDispatcher: boolean;

  constructor(opts: TransportOptions) {
    this.hosts = opts.hosts;
    this.logger = opts.logger;
    this.userAgent = opts.userAgent;
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.ownsDispatcher = opts.dispatcher === undefined;
    const injected = opts.dispatcher;
    this.makeDispatcher = injected
      ? () => Promise.resolve(injected)
      : async () => {
          const { Agent } = await import('undici');
          return new Agent({
            connect: { timeout: opts.connectTimeoutMs ?? 30_000 },
            headersTimeout: opts.headersTimeoutMs ?? 60_000,
            bodyTimeout: opts.bodyTimeoutMs ?? 300_000,
          });
        };
  }

  async close(): Promise<void> {
    const d = this.dispatcher;
    this.dispatcher = undefined;
    if (this.ownsDispatcher && d) await (await d).close();
  }

  /** Backoff before attempt `n` (1-based retry count), with jitter; honours Retry-After. */
  backoffMs(n: number, retryAfter?: string): number {
    const secs = retryAfter !== undefined && /^\d+$/.test(retryAfter) ? Number(retryAfter) * 1000 : undefined;
    const exp = this.retry.baseDelayMs * 2 ** (n - 1);
    const base = secs ?? exp * (0.5 + Math.random() * 0.5);
    return Math.min(this.retry.maxDelayMs, base);
  }

  /**
   * Perform the request, following redirects, retrying transient failures (5xx except 501,
   * 429, connection resets). Returns the final response, whatever its status; the caller
   * owns the body. Network failures after the last attempt become Unavailable naming the host.
   */
  async send(req: HttpRequest): Promise<HttpResponse> {
    for (let attempt = 1; ; attempt++) {
      if (req.signal?.aborted) throw canceled(req.signal);
      let res: HttpResponse;
      try {
        res = await this.followRedirects(req);
      } catch (err) {
        if (err instanceof BerthError) throw err;
        if (req.signal?.aborted) throw canceled(req.signal);
        const code = errorCode(err) ?? 'error';
        if (attempt < this.retry.attempts && isRetryableNetworkError(err)) {
          const wait = this.backoffMs(attempt);
          this.logger.debug('registry request failed, retrying', { host: req.url.host, code, attempt, wait_ms: wait });
          await this.sleep(wait, req.signal);
          continue;
        }
        const msg = err instanceof Error ? err.message : String(err);
        throw errors.unavailable('registry.unavailable', `registry ${req.url.host} unreachable: ${code}: ${msg}`, err);
      }
      const transient = (res.status >= 500 && res.status !== 501) || res.status === 429;
      if (transient && attempt < this.retry.attempts) {
        const wait = this.backoffMs(attempt, header(res.headers, 'retry-after'));
        this.logger.debug('registry answered with a transient status, retrying', { host: res.url.host, status: res.status, attempt, wait_ms: wait });
        await discard(res.body);
        await this.sleep(wait, req.signal);
        continue;
      }
      return res;
    }
  }

  private async sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
    try {
      await delay(ms, undefined, signal ? { signal } : undefined);
    } catch {
      throw canceled(signal);
    }
  }

  private async followRedirects(req: HttpRequest): Promise<HttpResponse> {
    let url = req.url;
    let headers = { ...req.headers };
    let method = req.method;
    let body = req.body;
    for (let hop = 0; ; hop++) {
      this.hosts.checkScheme(url, `a registry request`);
      this.dispatcher ??= this.makeDispatcher();
      const r = await (
        await this.dispatcher
      ).request({
        origin: url.origin,
        path: url.pathname + url.search,
        method,
        headers: { 'user-agent': this.userAgent, ...headers },
        body: body ?? null,
        signal: req.signal ?? null,
      });
      this.logger.debug('registry http', { method, host: url.host, path: url.pathname, status: r.statusCode });
      const location = header(r.headers, 'location');
      if (![301, 302, 303, 307, 308].includes(r.statusCode) || location === undefined) {
        return { status: r.statusCode, headers: r.headers, body: r.body, url };
      }
      await discard(r.body);
      if (hop >= MAX_REDIRECTS) {
        throw errors.unavailable('registry.too_many_redirects', `registry ${req.url.host}: more than ${MAX_REDIRECTS} redirects for ${req.url.pathname}`);
      }
      const next = new URL(location, url);
      this.hosts.checkRedirect(url, next);
      if ((r.statusCode === 303 || r.statusCode === 301 || r.statusCode === 302) && method === 'POST') {
        // As browsers do: the redirected request is a GET without the body.
        method = 'GET';
        body = undefined;
        const { 'content-type': _type, ...rest } = headers;
        headers = rest;
      }
      if (next.origin !== url.origin) {
        // Credentials are for the registry only, never for storage backends it redirects to.
        const { authorization: _dropped, ...rest } = headers;
        headers = rest;
        // 307/308 would repeat the body (a refresh token, say) to the other origin: never.
        if (body !== undefined) {
          throw errors.permissionDenied('registry.redirect_refused', `refusing to re-send a ${method} body to ${next.host}, where ${url.host} redirected it`);
        }
      }
      url = next;
    }
  }
}
