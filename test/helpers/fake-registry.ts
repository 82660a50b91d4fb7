/**
 * In-process fake OCI registry for tests: node:http on 127.0.0.1, random port. Serves
 * manifests and blobs (HEAD/GET, Range), optional Basic or Bearer auth with its own token
 * endpoint, records every request, and lets a test intercept requests to inject faults.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Descriptor } from '../../src/core/images/descriptor.js';

export type FakeAuth =
  | { kind: 'none' }
  | { kind: 'basic'; username: string; password: string }
  | {
      kind: 'bearer';
      /** When set, the token endpoint requires these Basic credentials (else anonymous ok). */
      username?: string;
      password?: string;
      /** Refresh token accepted by POST /token. */
      refreshToken?: string;
      /** Tokens the registry accepts as is (CRI registryToken). */
      staticTokens?: string[];
      expiresIn?: number;
    };

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: string;
}

/** Return true when the request was handled (response sent or socket destroyed). */
export type Interceptor = (req: IncomingMessage, res: ServerResponse, url: URL) => boolean | Promise<boolean>;

interface StoredManifest {
  mediaType: string;
  data: Buffer;
  digest: string;
}

export function sha256(data: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

export class FakeRegistry {
  readonly requests: RecordedRequest[] = [];
  readonly blobs = new Map<string, Buffer>();
  /** repo → (tag or digest → manifest) */
  readonly manifests = new Map<string, Map<string, StoredManifest>>();
  auth: FakeAuth = { kind: 'none' };
  intercept: Interceptor | undefined;
  /** Answer HEAD /manifests with 405 (registries without HEAD support). */
  noHead = false;
  /** Omit Docker-Content-Digest on manifest responses. */
  omitDigestHeader = false;
  /** Redirect blob GETs to this base URL (e.g. another FakeRegistry acting as storage). */
  blobRedirectBase: string | undefined;
  private issued = new Map<string, string[]>(); // token → scopes
  private tokenCounter = 0;
  private server!: Server;
  port = 0;

  static async start(init: Partial<Pick<FakeRegistry, 'auth' | 'noHead' | 'omitDigestHeader'>> = {}): Promise<FakeRegistry> {
    const r = new FakeRegistry();
    Object.assign(r, init);
    r.server = createServer((req, res) => {
      r.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500);
        res.end(String(err));
      });
    });
    await new Promise<void>((resolve) => r.server.listen(0, '127.0.0.1', resolve));
    r.port = (r.server.address() as AddressInfo).port;
    return r;
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `http://${this.host}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Token requests received by /token. */
  tokenRequests(): RecordedRequest[] {
    return this.requests.filter((r) => r.path === '/token');
  }

  /** Requests to the /v2 API (not the token endpoint). */
  apiRequests(): RecordedRequest[] {
    return this.requests.filter((r) => r.path.startsWith('/v2/'));
  }

  addBlob(data: Buffer, mediaType = 'application/octet-stream'): Descriptor {
    const digest = sha256(data);
    this.blobs.set(digest, data);
    return { mediaType, digest, size: data.length };
  }

  addManifest(repo: string, data: Buffer, mediaType: string, tags: string[] = []): Descriptor {
    const digest = sha256(data);
    let m = this.manifests.get(repo);
    if (!m) this.manifests.set(repo, (m = new Map()));
    const stored = { mediaType, data, digest };
    m.set(digest, stored);
    for (const t of tags) m.set(t, stored);
    return { mediaType, digest, size: data.length };
  }

  /** A one-layer OCI image; returns the manifest, config and layer descriptors. */
  addImage(
    repo: string,
    tag: string,
    layer: Buffer = Buffer.from('layer-bytes'),
  ): { manifest: Descriptor; config: Descriptor; layer: Descriptor; manifestBytes: Buffer } {
    const layerDesc = this.addBlob(layer, 'application/vnd.oci.image.layer.v1.tar');
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layerDesc.digest] } }));
    const configDesc = this.addBlob(config, 'application/vnd.oci.image.config.v1+json');
    const manifestBytes = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: configDesc, layers: [layerDesc] }),
    );
    const manifest = this.addManifest(repo, manifestBytes, 'application/vnd.oci.image.manifest.v1+json', [tag]);
    return { manifest, config: configDesc, layer: layerDesc, manifestBytes };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', `http://${this.host}`);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    this.requests.push({ method: req.method ?? '', path: url.pathname, query: url.searchParams, headers: req.headers, body: Buffer.concat(chunks).toString() });
    if (this.intercept && (await this.intercept(req, res, url))) return;
    if (url.pathname === '/token') return this.handleToken(req, res, url);
    if (url.pathname === '/v2/' || url.pathname === '/v2') return this.json(res, 200, {});
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    if (!m) return this.json(res, 404, { errors: [{ code: 'NOT_FOUND', message: 'no route' }] });
    const [, repo, kind, ref] = m as unknown as [string, string, string, string];
    if (!this.authorized(req, repo, res)) return;
    if (kind === 'manifests') return this.serveManifest(req, res, repo, ref);
    return this.serveBlob(req, res, repo, ref);
  }

  private authorized(req: IncomingMessage, repo: string, res: ServerResponse): boolean {
    const a = this.auth;
    const given = req.headers.authorization ?? '';
    if (a.kind === 'none') return true;
    if (a.kind === 'basic') {
      const want = 'Basic ' + Buffer.from(`${a.username}:${a.password}`).toString('base64');
      if (given === want) return true;
      res.setHeader('www-authenticate', 'Basic realm="fake"');
    } else {
      const token = given.startsWith('Bearer ') ? given.slice(7) : '';
      if (a.staticTokens?.includes(token)) return true;
      const scopes = this.issued.get(token);
      if (scopes?.includes(`repository:${repo}:pull`)) return true;
      res.setHeader('www-authenticate', `Bearer realm="${this.url}/token",service="fake-registry",scope="repository:${repo}:pull"`);
    }
    this.json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] });
    return false;
  }

  private handleToken(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const a = this.auth;
    if (a.kind !== 'bearer') return this.json(res, 404, {});
    let scopes: string[];
    if (req.method === 'POST') {
      const form = new URLSearchParams(this.requests[this.requests.length - 1]!.body);
      if (form.get('grant_type') !== 'refresh_token' || !a.refreshToken || form.get('refresh_token') !== a.refreshToken) {
        return this.json(res, 401, { error: 'invalid refresh token' });
      }
      scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
    } else {
      if (a.username !== undefined) {
        const want = 'Basic ' + Buffer.from(`${a.username}:${a.password ?? ''}`).toString('base64');
        if (req.headers.authorization !== want) return this.json(res, 401, { details: 'bad credentials' });
      }
      scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' '));
    }
    const token = `tok-${++this.tokenCounter}`;
    this.issued.set(token, scopes);
    const body = req.method === 'POST' ? { access_token: token, expires_in: a.expiresIn ?? 300 } : { token, expires_in: a.expiresIn ?? 300 };
    this.json(res, 200, body);
  }

  private serveManifest(req: IncomingMessage, res: ServerResponse, repo: string, ref: string): void {
    const stored = this.manifests.get(repo)?.get(ref);
    if (!this.manifests.has(repo)) return this.json(res, 404, { errors: [{ code: 'NAME_UNKNOWN', message: 'repository name not known to registry' }] });
    if (!stored) return this.json(res, 404, { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] });
    if (req.method === 'HEAD' && this.noHead) {
      res.writeHead(405);
      res.end();
      return;
    }
    const headers: Record<string, string> = { 'content-type': stored.mediaType, 'content-length': String(stored.data.length) };
    if (!this.omitDigestHeader) headers['docker-content-digest'] = stored.digest;
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : stored.data);
  }

  private serveBlob(req: IncomingMessage, res: ServerResponse, _repo: string, digest: string): void {
    const data = this.blobs.get(digest);
    if (!data) return this.json(res, 404, { errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown to registry' }] });
    if (this.blobRedirectBase) {
      res.writeHead(307, { location: `${this.blobRedirectBase}/storage/${digest}` });
      res.end();
      return;
    }
    serveBytes(req, res, data);
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    const data = Buffer.from(JSON.stringify(body));
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(data.length) });
    res.end(data);
  }
}

/** Serve bytes honouring a `Range: bytes=N-` header (206) like distribution does. */
export function serveBytes(req: IncomingMessage, res: ServerResponse, data: Buffer): void {
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (range) {
    const start = Number(range[1]);
    if (start >= data.length) {
      res.writeHead(416, { 'content-range': `bytes */${data.length}` });
      res.end();
      return;
    }
    res.writeHead(206, { 'content-range': `bytes ${start}-${data.length - 1}/${data.length}`, 'content-length': String(data.length - start) });
    res.end(req.method === 'HEAD' ? undefined : data.subarray(start));
    return;
  }
  res.writeHead(200, { 'content-length': String(data.length), 'content-type': 'application/octet-stream' });
  res.end(req.method === 'HEAD' ? undefined : data);
}

/** Run `fn` with fresh fake registries, closing them afterwards whatever happens. */
export async function withRegistries<T>(count: number, fn: (regs: FakeRegistry[]) => Promise<T>): Promise<T> {
  const regs: FakeRegistry[] = [];
  try {
    for (let i = 0; i < count; i++) regs.push(await FakeRegistry.start());
    return await fn(regs);
  } finally {
    await Promise.all(regs.map((r) => r.close()));
  }
}

/** Read a stream fully. */
export async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of stream) out.push(c as Buffer);
  return Buffer.concat(out);
}
