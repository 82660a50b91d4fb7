/**
 * A small image pusher following the OCI distribution spec, for tests and benches.
 *
 * Blobs: HEAD first (skip when present), then POST /v2/<name>/blobs/uploads/ to open a session
 * and one monolithic PUT <location>?digest=... with the whole body.
 * Manifests: PUT /v2/<name>/manifests/<reference> with the manifest's own media type.
 */
import { createReadStream, statSync } from 'node:fs';
import { request } from 'undici';

export interface PushAuth {
  username: string;
  password: string;
}

export interface PushTarget {
  /** 'http://127.0.0.1:PORT' */
  url: string;
  auth?: PushAuth;
}

/** A blob held either in memory or in a file. */
export interface PushBlob {
  digest: string;
  size: number;
  data?: Buffer;
  path?: string;
}

export class PushError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'PushError';
  }
}

function headers(target: PushTarget, extra: Record<string, string> = {}): Record<string, string> {
  const h: Record<string, string> = { ...extra };
  if (target.auth) {
    const token = Buffer.from(`${target.auth.username}:${target.auth.password}`).toString('base64');
    h['authorization'] = `Basic ${token}`;
  }
  return h;
}

async function bodyText(body: { text(): Promise<string> }): Promise<string> {
  try {
    return (await body.text()).slice(0, 500);
  } catch {
    return '';
  }
}

export async function blobExists(target: PushTarget, repo: string, digest: string): Promise<boolean> {
  const res = await request(`${target.url}/v2/${repo}/blobs/${digest}`, {
    method: 'HEAD',
    headers: headers(target),
  });
  await res.body.dump();
  if (res.statusCode === 200) return true;
  if (res.statusCode === 404) return false;
  throw new PushError(`HEAD blob ${digest}: HTTP ${res.statusCode}`, res.statusCode);
}

export async function pushBlob(target: PushTarget, repo: string, blob: PushBlob): Promise<'exists' | 'uploaded'> {
  if (await blobExists(target, repo, blob.digest)) return 'exists';

  const start = await request(`${target.url}/v2/${repo}/blobs/uploads/`, {
    method: 'POST',
    headers: headers(target, { 'content-length': '0' }),
  });
  if (start.statusCode !== 202) {
    throw new PushError(`POST upload ${repo}: HTTP ${start.statusCode} ${await bodyText(start.body)}`, start.statusCode);
  }
  await start.body.dump();
  const location = start.headers['location'];
  if (typeof location !== 'string') throw new PushError('upload session without Location header', 202);
  // Location may be relative to the registry and already carry a query string.
  const put = new URL(location, target.url);
  put.searchParams.set('digest', blob.digest);

  const size = blob.data ? blob.data.length : statSync(requirePath(blob)).size;
  if (size !== blob.size) throw new Error(`blob ${blob.digest}: size ${size} != descriptor ${blob.size}`);
  const body = blob.data ?? createReadStream(requirePath(blob));
  const res = await request(put.toString(), {
    method: 'PUT',
    headers: headers(target, { 'content-type': 'application/octet-stream', 'content-length': String(size) }),
    body,
  });
  if (res.statusCode !== 201) {
    throw new PushError(`PUT blob ${blob.digest}: HTTP ${res.statusCode} ${await bodyText(res.body)}`, res.statusCode);
  }
  await res.body.dump();
  return 'uploaded';
}

function requirePath(blob: PushBlob): string {
  if (!blob.path) throw new Error(`blob ${blob.digest} has neither data nor path`);
  return blob.path;
}

/** Pushes a manifest (or index) under a tag or digest; returns the digest the registry reports. */
export async function pushManifest(target: PushTarget, repo: string, reference: string, mediaType: string, bytes: Buffer): Promise<string> {
  const res = await request(`${target.url}/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    headers: headers(target, { 'content-type': mediaType, 'content-length': String(bytes.length) }),
    body: bytes,
  });
  if (res.statusCode !== 201) {
    throw new PushError(`PUT manifest ${repo}:${reference}: HTTP ${res.statusCode} ${await bodyText(res.body)}`, res.statusCode);
  }
  await res.body.dump();
  const digest = res.headers['docker-content-digest'];
  return typeof digest === 'string' ? digest : '';
}
