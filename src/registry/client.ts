/**
 * OCI distribution (Docker registry v2) client for pulls.
 *
 * For each request the endpoints of the reference's registry are tried in order (mirrors,
 * then upstream); any failure falls through to the next endpoint, and the last endpoint's
 * error is the one reported (so NotFound everywhere is NotFound). Every manifest read is
 * capped before parsing and digest-verified; every blob stream delivers exactly
 * `desc.size` bytes or fails, resuming with a Range request after a broken connection.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import type { Descriptor } from '../core/images/descriptor.js';
import { isValidDigest } from '../core/images/descriptor.js';
import { MediaType, baseMediaType, isManifestOrIndex, isSchema1, manifestAccept } from '../core/images/mediatypes.js';
import type { Remote } from '../core/images/ports.js';
import { manifestReference, referenceString, type Reference } from '../core/images/reference.js';
import { BerthError, berthError, errors, hasCode, toBerthError } from '../errors.js';
import type { CodeOf } from '../error-codes.js';
import { log, type Logger } from '../log.js';
import { Authorizer, credentialsForEndpoint, type Credentials } from './auth.js';
import { RegistryHosts, endpointUrl, type Endpoint, type MirrorsConfig } from './hosts.js';
import { failure } from './status.js';
import {
  Transport,
  abandon,
  discard,
  errorCode,
  header,
  headerAll,
  isRetryableNetworkError,
  readCapped,
  type HttpResponse,
  type RetryPolicy,
} from './transport.js';

export const DEFAULT_MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const DEFAULT_BLOB_RESUMES = 3;

export interface RegistryClientOptions {
  /** Registry host → mirror endpoints, tried before the host itself. */
  mirrors?: MirrorsConfig;
  userAgent?: string;
  /** Hard cap on any manifest or index (default 4 MiB). */
  maxManifestBytes?: number;
  logger?: Logger;
  retry?: Partial<RetryPolicy>;
  /** How many times a broken blob download is resumed (default 3). */
  blobResumes?: number;
  /** Credentials from daemon config for a host, used when the request brings none for it. */
  credentials?: (host: string) => Credentials | undefined;
  /** Injected undici dispatcher (tests); by default the client owns an Agent. */
  dispatcher?: Dispatcher;
  connectTimeoutMs?: number;
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
}

export interface Resolved {
  descriptor: Descriptor;
  /** The endpoint that answered (a mirror or the upstream). */
  endpoint: Endpoint;
}

interface Sent {
  res: HttpResponse;
  /** Credentials were presented to this endpoint. */
  authenticated: boolean;
}

type DigestAlgorithm = 'sha256' | 'sha512';

function algorithmOf(digest: string): DigestAlgorithm {
  return digest.startsWith('sha512:') ? 'sha512' : 'sha256';
}

function digestOf(data: Buffer, algorithm: DigestAlgorithm): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

function contentLength(res: HttpResponse): number | undefined {
  const v = header(res.headers, 'content-length');
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  return Number(v);
}

/** Media type from a manifest body, for registries that send a generic Content-Type. */
function mediaTypeFromBody(data: Buffer): string | undefined {
  try {
    const j = JSON.parse(data.toString('utf8')) as { mediaType?: unknown; schemaVersion?: unknown; manifests?: unknown; config?: unknown; layers?: unknown };
    if (typeof j.mediaType === 'string' && j.mediaType) return j.mediaType;
    if (j.schemaVersion === 1) return MediaType.dockerSchema1Manifest;
    if (Array.isArray(j.manifests)) return MediaType.ociIndex;
    if (j.config !== undefined && Array.isArray(j.layers)) return MediaType.ociManifest;
  } catch {
    return undefined;
  }
  return undefined;
}

function sizeMismatch(what: string, host: string, detail: string): BerthError {
  return errors.failedPrecondition('registry.size_mismatch', `${what} from registry ${host}: ${detail}`);
}

export class RegistryClient implements Remote {
  private readonly hosts: RegistryHosts;
  private readonly transport: Transport;
  private readonly auth: Authorizer;
  private readonly logger: Logger;
  private readonly maxManifestBytes: number;
  private readonly blobResumes: number;
  private readonly configCredentials: ((host: string) => Credentials | undefined) | undefined;

  constructor(opts: RegistryClientOptions = {}) {
    this.hosts = new RegistryHosts(opts.mirrors ?? {});
    this.logger = opts.logger ?? log.child({ component: 'registry' });
    this.maxManifestBytes = opts.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES;
    this.blobResumes = opts.blobResumes ?? DEFAULT_BLOB_RESUMES;
    this.configCredentials = opts.credentials;
    const userAgent = opts.userAgent ?? 'berth/0.1';
    this.transport = new Transport({
      hosts: this.hosts,
      logger: this.logger,
      userAgent,
      ...(opts.retry ? { retry: opts.retry } : {}),
      ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
      ...(opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: opts.connectTimeoutMs } : {}),
      ...(opts.headersTimeoutMs !== undefined ? { headersTimeoutMs: opts.headersTimeoutMs } : {}),
      ...(opts.bodyTimeoutMs !== undefined ? { bodyTimeoutMs: opts.bodyTimeoutMs } : {}),
    });
    this.auth = new Authorizer(this.transport, this.hosts, this.logger, userAgent.split('/')[0] ?? 'berth');
  }

  /** Endpoints tried for a registry host, in order (exposed for diagnostics and tests). */
  endpoints(domain: string): Endpoint[] {
    return this.hosts.endpoints(domain);
  }

  /** Replace the mirror config (config reload); throws on a bad endpoint and keeps the old one. */
  setMirrors(mirrors: MirrorsConfig): void {
    this.hosts.update(mirrors);
  }

  /** Release pooled connections. */
  async close(): Promise<void> {
    await this.transport.close();
  }

  /** Remote.resolve: the root descriptor (manifest or index) the reference names. */
  async resolve(ref: Reference, creds?: Credentials, signal?: AbortSignal): Promise<Descriptor> {
    return (await this.resolveWithEndpoint(ref, creds, signal)).descriptor;
  }

  async resolveWithEndpoint(ref: Reference, creds?: Credentials, signal?: AbortSignal): Promise<Resolved> {
    return this.tryEndpoints(ref, signal, async (ep) => ({ descriptor: await this.resolveOn(ep, ref, creds, signal), endpoint: ep }));
  }

  /** Manifest or index bytes: size-capped while reading, then digest- and size-verified. */
  async fetchManifest(ref: Reference, desc: Descriptor, creds?: Credentials, signal?: AbortSignal): Promise<Buffer> {
    this.checkDescriptor(ref, desc);
    if (desc.size > this.maxManifestBytes) {
      throw errors.resourceExhausted(
        'registry.manifest_too_large',
        `manifest ${desc.digest} of ${referenceString(ref)} is ${desc.size} bytes, over the ${this.maxManifestBytes}-byte limit`,
      );
    }
    return this.tryEndpoints(ref, signal, (ep) => this.fetchManifestOn(ep, ref, desc, creds, signal));
  }

  /**
   * A stream of exactly desc.size bytes of the blob (digest verification is the content
   * store's job). Resolves once the registry has answered with the blob, so NotFound and auth
   * errors surface here; later failures are errors on the stream.
   */
  async fetchBlob(ref: Reference, desc: Descriptor, creds?: Credentials, signal?: AbortSignal): Promise<Readable> {
    this.checkDescriptor(ref, desc);
    return this.tryEndpoints(ref, signal, (ep) => this.fetchBlobOn(ep, ref, desc, creds, signal));
  }

  // ---- internals -------------------------------------------------------------------------

  private checkDescriptor(ref: Reference, desc: Descriptor): void {
    if (!isValidDigest(desc.digest)) {
      throw errors.invalidArgument('registry.invalid_descriptor', `descriptor for ${referenceString(ref)} has an invalid digest "${desc.digest}"`);
    }
    if (!Number.isSafeInteger(desc.size) || desc.size < 0) {
      throw errors.invalidArgument('registry.invalid_descriptor', `descriptor ${desc.digest} of ${referenceString(ref)} has an invalid size ${desc.size}`);
    }
  }

  private async tryEndpoints<T>(ref: Reference, signal: AbortSignal | undefined, fn: (ep: Endpoint) => Promise<T>): Promise<T> {
    const eps = this.hosts.endpoints(ref.domain);
    const earlier: string[] = [];
    let last: BerthError | undefined;
    for (const [i, ep] of eps.entries()) {
      try {
        return await fn(ep);
      } catch (err) {
        const e = toBerthError(err);
        if (e.kind === 'Canceled' || signal?.aborted) throw e.kind === 'Canceled' ? e : errors.canceled('registry.canceled', 'registry request canceled', err);
        last = e;
        if (i < eps.length - 1) {
          earlier.push(`${ep.host}: ${e.message}`);
          this.logger.warn('registry endpoint failed, trying the next one', { endpoint: ep.host, upstream: ep.upstream, kind: e.kind, error: e.message });
        }
      }
    }
    if (!last) throw errors.internal('registry.no_endpoints', `no endpoints for registry ${ref.domain}`);
    if (earlier.length === 0) throw last;
    return Promise.reject(berthError(last.code, `${last.message} (also tried: ${earlier.join('; ')})`, last));
  }

  /** Send with authentication: cached auth up front, one renewal after a 401 challenge. */
  private async authedSend(
    ep: Endpoint,
    ref: Reference,
    method: 'GET' | 'HEAD',
    url: URL,
    headers: Record<string, string>,
    creds: Credentials | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Sent> {
    const c = credentialsForEndpoint(ep, creds) ?? this.configCredentials?.(ep.host);
    const scope = `repository:${ref.path}:pull`;
    const withSignal = signal ? { signal } : {};
    try {
      let authz = await this.auth.authorization(ep.host, scope, c, signal);
      let res = await this.transport.send({ method, url, headers: authz ? { ...headers, authorization: authz } : headers, ...withSignal });
      if (res.status === 401 && res.url.origin !== url.origin) {
        // A redirect target's challenge is not the registry's: following it would send the
        // pull secret to whatever token realm that host names (and remember it for later pulls).
        this.logger.warn('registry: ignoring an authentication challenge from a redirect target', { endpoint: ep.host, from: res.url.host });
      } else if (res.status === 401) {
        const challenge = headerAll(res.headers, 'www-authenticate');
        if (await this.auth.onUnauthorized(ep.host, challenge, scope, c, signal)) {
          await discard(res.body);
          authz = await this.auth.authorization(ep.host, scope, c, signal);
          res = await this.transport.send({ method, url, headers: authz ? { ...headers, authorization: authz } : headers, ...withSignal });
        }
      }
      return { res, authenticated: c !== undefined };
    } catch (err) {
      if (err instanceof BerthError && (err.kind === 'Unauthenticated' || err.kind === 'PermissionDenied')) {
        throw err.wrap(`pulling repository ${ref.path} from registry ${ep.host}`);
      }
      throw err;
    }
  }

  private ctx(ep: Endpoint, ref: Reference, what: string, notFoundCode: CodeOf<'NotFound'>, authenticated: boolean) {
    return { host: ep.host, repository: ref.path, what, notFoundCode, authenticated };
  }

  private async resolveOn(ep: Endpoint, ref: Reference, creds: Credentials | undefined, signal: AbortSignal | undefined): Promise<Descriptor> {
    const name = referenceString(ref);
    const url = endpointUrl(ep, `${ref.path}/manifests/${manifestReference(ref)}`);
    const headers = { accept: manifestAccept };
    const head = await this.authedSend(ep, ref, 'HEAD', url, headers, creds, signal);
    const hs = head.res.status;
    if (hs === 200) {
      await discard(head.res.body);
      const desc = this.descriptorFromHead(ep, ref, head.res);
      if (desc) return desc;
    } else if (hs === 404 || hs === 401 || hs === 403 || hs === 429 || hs >= 500) {
      throw await failure(head.res, this.ctx(ep, ref, `image ${name}`, 'image.not_found', head.authenticated));
    } else {
      await discard(head.res.body); // e.g. 405: some registries do not implement HEAD
    }

    // GET fallback: the body is read (capped) and hashed to learn the digest.
    const got = await this.authedSend(ep, ref, 'GET', url, headers, creds, signal);
    if (got.res.status !== 200) throw await failure(got.res, this.ctx(ep, ref, `image ${name}`, 'image.not_found', got.authenticated));
    const data = await this.readManifestBody(ep, ref, got.res, this.maxManifestBytes, `manifest of ${name}`);
    const algorithm = ref.digest ? algorithmOf(ref.digest) : 'sha256';
    const digest = digestOf(data, algorithm);
    const claimed = header(got.res.headers, 'docker-content-digest');
    if (ref.digest && ref.digest !== digest) {
      throw errors.failedPrecondition('registry.digest_mismatch', `registry ${ep.host} served ${name} with digest ${digest}`);
    }
    if (claimed && algorithmOf(claimed) === algorithm && claimed !== digest) {
      throw errors.failedPrecondition(
        'registry.digest_mismatch',
        `registry ${ep.host} claims digest ${claimed} for ${name} but the content hashes to ${digest}`,
      );
    }
    const ct = baseMediaType(header(got.res.headers, 'content-type') ?? '');
    const mediaType = isManifestOrIndex(ct) ? ct : (mediaTypeFromBody(data) ?? ct);
    this.checkManifestType(ep, name, mediaType);
    return { mediaType, digest, size: data.length };
  }

  /** Descriptor from HEAD headers, or undefined when they are incomplete (then GET). */
  private descriptorFromHead(ep: Endpoint, ref: Reference, res: HttpResponse): Descriptor | undefined {
    const name = referenceString(ref);
    const mediaType = baseMediaType(header(res.headers, 'content-type') ?? '');
    const size = contentLength(res);
    const claimed = header(res.headers, 'docker-content-digest');
    if (isSchema1(mediaType)) this.checkManifestType(ep, name, mediaType);
    if (!isManifestOrIndex(mediaType) || size === undefined || size === 0) return undefined;
    if (claimed !== undefined && !isValidDigest(claimed)) return undefined;
    if (ref.digest && claimed && claimed !== ref.digest && algorithmOf(claimed) === algorithmOf(ref.digest)) {
      throw errors.failedPrecondition('registry.digest_mismatch', `registry ${ep.host} answered ${name} with digest ${claimed}`);
    }
    const digest = ref.digest ?? claimed;
    if (digest === undefined) return undefined;
    if (size > this.maxManifestBytes) {
      throw errors.resourceExhausted(
        'registry.manifest_too_large',
        `manifest of ${name} on registry ${ep.host} is ${size} bytes, over the ${this.maxManifestBytes}-byte limit`,
      );
    }
    return { mediaType, digest, size };
  }

  private checkManifestType(ep: Endpoint, name: string, mediaType: string): void {
    if (isSchema1(mediaType)) {
      throw errors.unimplemented('image.schema1_unsupported', `${name} on registry ${ep.host} is a Docker schema 1 image, which berth does not support`);
    }
    if (!isManifestOrIndex(mediaType)) {
      throw errors.failedPrecondition('image.unsupported_media_type', `${name} on registry ${ep.host} has unsupported media type "${mediaType}"`);
    }
  }

  private async readManifestBody(ep: Endpoint, ref: Reference, res: HttpResponse, cap: number, what: string): Promise<Buffer> {
    const tooLarge = () =>
      errors.resourceExhausted('registry.manifest_too_large', `${what} on registry ${ep.host} is over the ${cap}-byte limit (${referenceString(ref)})`);
    const len = contentLength(res);
    if (len !== undefined && len > cap) {
      abandon(res.body); // never read an oversized body
      throw tooLarge();
    }
    return readCapped(res.body, cap, tooLarge);
  }

  private async fetchManifestOn(
    ep: Endpoint,
    ref: Reference,
    desc: Descriptor,
    creds: Credentials | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Buffer> {
    const what = `manifest ${desc.digest} of ${referenceString(ref)}`;
    const url = endpointUrl(ep, `${ref.path}/manifests/${desc.digest}`);
    const { res, authenticated } = await this.authedSend(ep, ref, 'GET', url, { accept: manifestAccept }, creds, signal);
    if (res.status !== 200) throw await failure(res, this.ctx(ep, ref, what, 'image.not_found', authenticated));
    const len = contentLength(res);
    if (len !== undefined && len !== desc.size && len <= this.maxManifestBytes) {
      abandon(res.body);
      throw sizeMismatch(what, ep.host, `Content-Length ${len} but the descriptor says ${desc.size} bytes`);
    }
    // Reading one byte past the expected size is enough to tell "too big" apart.
    const data = await this.readManifestBody(ep, ref, res, Math.min(this.maxManifestBytes, desc.size), what).catch((err: unknown) => {
      if (hasCode(err, 'registry.manifest_too_large') && desc.size < this.maxManifestBytes) {
        throw sizeMismatch(what, ep.host, `more than the ${desc.size} bytes the descriptor says`);
      }
      throw err;
    });
    if (data.length !== desc.size) throw sizeMismatch(what, ep.host, `got ${data.length} bytes, the descriptor says ${desc.size}`);
    const digest = digestOf(data, algorithmOf(desc.digest));
    if (digest !== desc.digest) {
      throw errors.failedPrecondition('registry.digest_mismatch', `${what} from registry ${ep.host} hashes to ${digest}`);
    }
    return data;
  }

  private async fetchBlobOn(
    ep: Endpoint,
    ref: Reference,
    desc: Descriptor,
    creds: Credentials | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Readable> {
    const what = `blob ${desc.digest} of ${referenceString(ref)}`;
    const url = endpointUrl(ep, `${ref.path}/blobs/${desc.digest}`);
    const open = async (offset: number): Promise<HttpResponse> => {
      const headers: Record<string, string> = { accept: '*/*' };
      if (offset > 0) headers['range'] = `bytes=${offset}-`;
      const { res, authenticated } = await this.authedSend(ep, ref, 'GET', url, headers, creds, signal);
      if (res.status === 200 || (offset > 0 && res.status === 206)) return res;
      if (res.status === 416) {
        await discard(res.body);
        throw sizeMismatch(what, ep.host, `ended after ${offset} of ${desc.size} bytes`);
      }
      throw await failure(res, this.ctx(ep, ref, what, 'image.blob_not_found', authenticated));
    };
    const first = await open(0);
    const len = contentLength(first);
    if (len !== undefined && len !== desc.size) {
      abandon(first.body);
      throw sizeMismatch(what, ep.host, `Content-Length ${len} but the descriptor says ${desc.size} bytes (${len > desc.size ? 'too many' : 'too few'} bytes)`);
    }
    return Readable.from(this.blobChunks(ep, what, desc.size, first, open, signal), { objectMode: false });
  }

  /**
   * Yield exactly `size` bytes. A connection that breaks (or ends early) is resumed with a
   * Range request from the byte reached; a registry that ignores Range (200) is read again
   * with the bytes already delivered skipped.
   */
  private async *blobChunks(
    ep: Endpoint,
    what: string,
    size: number,
    first: HttpResponse,
    open: (offset: number) => Promise<HttpResponse>,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<Buffer> {
    let received = 0;
    let resumes = 0;
    let res = first;
    let skip = 0;
    for (;;) {
      let broken: unknown;
      try {
        for await (const raw of res.body as AsyncIterable<Buffer>) {
          let chunk = raw;
          if (skip > 0) {
            const drop = Math.min(skip, chunk.length);
            skip -= drop;
            chunk = chunk.subarray(drop);
            if (chunk.length === 0) continue;
          }
          if (received + chunk.length > size) {
            throw sizeMismatch(what, ep.host, `more than the ${size} bytes the descriptor says (too many bytes)`);
          }
          received += chunk.length;
          yield chunk;
        }
      } catch (err) {
        if (err instanceof BerthError) throw err;
        if (signal?.aborted) throw errors.canceled('registry.canceled', `download of ${what} canceled`, err);
        const code = errorCode(err);
        if (!isRetryableNetworkError(err) && code !== 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' && code !== 'ERR_STREAM_PREMATURE_CLOSE') {
          throw errors.unavailable(
            'registry.unavailable',
            `download of ${what} from registry ${ep.host} failed: ${err instanceof Error ? err.message : String(err)}`,
            err,
          );
        }
        broken = err;
      }
      if (received === size && skip === 0) return;
      if (resumes >= this.blobResumes) {
        if (broken !== undefined) {
          throw errors.unavailable(
            'registry.unavailable',
            `download of ${what} from registry ${ep.host} broke at byte ${received} of ${size} after ${resumes} resumes`,
            broken,
          );
        }
        throw sizeMismatch(what, ep.host, `ended after ${received} of ${size} bytes (too few bytes)`);
      }
      resumes++;
      this.logger.info('resuming blob download', { endpoint: ep.host, digest: what, offset: received, attempt: resumes });
      try {
        await delay(this.transport.backoffMs(resumes), undefined, signal ? { signal } : undefined);
      } catch (err) {
        throw errors.canceled('registry.canceled', `download of ${what} canceled`, err);
      }
      res = await open(received);
      if (res.status === 206) {
        const range = /^bytes (\d+)-/.exec(header(res.headers, 'content-range') ?? '');
        if (!range || Number(range[1]) !== received) {
          abandon(res.body);
          throw errors.unavailable(
            'registry.bad_range',
            `registry ${ep.host} answered a resume of ${what} at byte ${received} with range "${header(res.headers, 'content-range') ?? ''}"`,
          );
        }
        skip = 0;
      } else {
        skip = received; // full body again: drop what was already delivered
      }
    }
  }
}
