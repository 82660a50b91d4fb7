/**
 * Registry error responses → BerthError. The distribution spec's error body is
 * `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"…","detail":…}]}`; messages are kept
 * short and never include request headers.
 */
import { BerthError, errors } from '../errors.js';
import type { CodeOf } from '../error-codes.js';
import { discard, readCapped, type HttpResponse } from './transport.js';

const ERROR_BODY_MAX = 64 * 1024;

export interface RegistryErrorBody {
  codes: string[];
  message: string;
}

/** Read (at most 64 KiB of) an error body; unparseable bodies yield no codes. */
export async function readErrorBody(res: HttpResponse): Promise<RegistryErrorBody> {
  if (res.status < 400) {
    await discard(res.body);
    return { codes: [], message: '' };
  }
  let raw: Buffer;
  try {
    raw = await readCapped(res.body, ERROR_BODY_MAX, () => errors.internal('registry.error_body_too_large', 'error body too large'));
  } catch {
    return { codes: [], message: '' };
  }
  try {
    const parsed = JSON.parse(raw.toString('utf8')) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    const list = Array.isArray(parsed.errors) ? parsed.errors : [];
    const codes = list.map((e) => (typeof e.code === 'string' ? e.code : '')).filter(Boolean);
    const message = list
      .map((e) => (typeof e.message === 'string' ? e.message : ''))
      .filter(Boolean)
      .join('; ')
      .slice(0, 300);
    return { codes, message };
  } catch {
    return { codes: [], message: '' };
  }
}

const NOT_FOUND_CODES = new Set(['MANIFEST_UNKNOWN', 'NAME_UNKNOWN', 'BLOB_UNKNOWN', 'NOT_FOUND']);

export interface FailureContext {
  /** Registry host that answered. */
  host: string;
  /** Repository path, e.g. `library/busybox`. */
  repository: string;
  /** What was asked for, for the message: `manifest docker.io/library/x:1`, `blob sha256:…`. */
  what: string;
  /** Stable code for NotFound: `image.not_found` or `image.blob_not_found`. */
  notFoundCode: CodeOf<'NotFound'>;
  /** Whether credentials were presented (changes the 401 message). */
  authenticated: boolean;
}

/** Map a final non-success response to an error naming the registry host and repository. */
export async function failure(res: HttpResponse, ctx: FailureContext): Promise<BerthError> {
  const body = await readErrorBody(res);
  const detail = body.message ? ` (${body.message})` : '';
  const st = res.status;
  if (st === 404 || body.codes.some((c) => NOT_FOUND_CODES.has(c))) {
    return errors.notFound(ctx.notFoundCode, `${ctx.what} not found on registry ${ctx.host}${detail}`);
  }
  if (st === 401 || body.codes.includes('UNAUTHORIZED')) {
    return errors.unauthenticated(
      'registry.unauthenticated',
      ctx.authenticated
        ? `registry ${ctx.host} rejected the credentials for repository ${ctx.repository}${detail}`
        : `registry ${ctx.host} requires authentication for repository ${ctx.repository}${detail}`,
    );
  }
  if (st === 403 || body.codes.includes('DENIED')) {
    return errors.permissionDenied('registry.permission_denied', `registry ${ctx.host} denied access to repository ${ctx.repository}${detail}`);
  }
  if (st === 429 || body.codes.includes('TOOMANYREQUESTS')) {
    return errors.resourceExhausted('registry.rate_limited', `registry ${ctx.host} is rate limiting pulls of ${ctx.repository}${detail}`);
  }
  if (st >= 500) {
    return errors.unavailable('registry.unavailable', `registry ${ctx.host} failed with HTTP ${st} fetching ${ctx.what}${detail}`);
  }
  return errors.internal('registry.unexpected_status', `registry ${ctx.host} answered HTTP ${st} fetching ${ctx.what}${detail}`);
}
