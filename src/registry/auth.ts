/**
 * Registry authentication: WWW-Authenticate challenges (Bearer token service, Basic), the
 * credentials a CRI AuthConfig carries, and a token cache keyed by host, service, scope and
 * the credentials used (so a token fetched with one pod's secret never serves another).
 * Secrets are never logged and never appear in error messages.
 */
import { createHash } from 'node:crypto';
import { errors } from '../errors.js';
import type { Credentials as ImageCredentials } from '../core/images/ports.js';
import type { Logger } from '../log.js';
import { sameRegistryHost, type Endpoint, type RegistryHosts } from './hosts.js';
import { discard, readCapped, type Transport } from './transport.js';

/** CRI AuthConfig shape; defined with the image service's ports so both sides share it. */
export type Credentials = ImageCredentials;

export interface Challenge {
  scheme: string; // lowercased: 'bearer' | 'basic' | …
  params: Record<string, string>;
}

/** Parse WWW-Authenticate values (RFC 7235: several challenges, quoted or token params). */
export function parseChallenges(values: string[]): Challenge[] {
  const out: Challenge[] = [];
  for (const value of values) {
    let i = 0;
    const s = value;
    let current: Challenge | undefined;
    const skipWs = () => {
      while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === ',')) i++;
    };
    while (i < s.length) {
      skipWs();
      const m = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+/.exec(s.slice(i));
      if (!m) break;
      const tok = m[0];
      i += tok.length;
      while (s[i] === ' ') i++;
      if (s[i] === '=' && current) {
        i++;
        while (s[i] === ' ') i++;
        let val = '';
        if (s[i] === '"') {
          i++;
          while (i < s.length && s[i] !== '"') {
            if (s[i] === '\\' && i + 1 < s.length) i++;
            val += s[i];
            i++;
          }
          i++;
        } else {
          const v = /^[^,\s]*/.exec(s.slice(i))![0];
          val = v;
          i += v.length;
        }
        current.params[tok.toLowerCase()] = val;
      } else {
        current = { scheme: tok.toLowerCase(), params: {} };
        out.push(current);
      }
    }
  }
  return out;
}

export interface UserPass {
  username: string;
  password: string;
}

/** username/password from either the explicit fields or the base64 `auth` field. */
export function userPass(creds: Credentials | undefined): UserPass | undefined {
  if (!creds) return undefined;
  if (creds.username) return { username: creds.username, password: creds.password ?? '' };
  if (creds.auth) {
    const decoded = Buffer.from(creds.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw errors.invalidArgument('registry.invalid_auth', 'auth field is not base64 of "username:password"');
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  return undefined;
}

function hostOf(serverAddress: string): string {
  const s = serverAddress.trim();
  try {
    return new URL(/^[a-z]+:\/\//i.test(s) ? s : `https://${s}`).host;
  } catch {
    return s;
  }
}

/**
 * Credentials to present to `endpoint`. With a serverAddress they go only to that host; without
 * one, only to the upstream registry, never to a mirror (a mirror is a different party).
 */
export function credentialsForEndpoint(endpoint: Endpoint, creds: Credentials | undefined): Credentials | undefined {
  if (!creds) return undefined;
  if (creds.serverAddress) {
    const target = hostOf(creds.serverAddress);
    if (sameRegistryHost(target, endpoint.host)) return creds;
    if (!endpoint.mirror && sameRegistryHost(target, endpoint.upstream)) return creds;
    return undefined;
  }
  return endpoint.mirror ? undefined : creds;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

const TOKEN_BODY_MAX = 1024 * 1024;
const DEFAULT_TOKEN_TTL_S = 60;

export class Authorizer {
  /** Last challenge seen per host, to authenticate up front on later requests. */
  private readonly challenges = new Map<string, Challenge>();
  private readonly tokens = new Map<string, CachedToken>();
  /** In-flight token fetches, so parallel layer pulls share one token request. */
  private readonly pending = new Map<string, Promise<string>>();

  constructor(
    private readonly transport: Transport,
    private readonly hosts: RegistryHosts,
    private readonly logger: Logger,
    private readonly clientId: string,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Authorization header for a request to `host`, from known challenges and cached tokens;
   * undefined when nothing is known yet (the request goes out anonymously and may get a 401).
   */
  async authorization(host: string, scope: string, creds: Credentials | undefined, signal?: AbortSignal): Promise<string | undefined> {
    if (creds?.registryToken) return `Bearer ${creds.registryToken}`;
    const ch = this.challenges.get(host);
    if (!ch) return undefined;
    if (ch.scheme === 'basic') {
      const up = userPass(creds);
      return up ? basicHeader(up) : undefined;
    }
    if (ch.scheme === 'bearer') {
      const key = this.tokenKey(host, ch, scope, creds);
      const cached = this.tokens.get(key);
      if (cached && cached.expiresAt > this.now()) return `Bearer ${cached.token}`;
      return `Bearer ${await this.fetchToken(host, ch, scope, creds, signal)}`;
    }
    return undefined;
  }

  /**
   * Record a 401's challenge. Returns true when a retry with new authorization makes sense:
   * the scheme is supported and we have something new to present.
   */
  async onUnauthorized(host: string, wwwAuthenticate: string[], scope: string, creds: Credentials | undefined, signal?: AbortSignal): Promise<boolean> {
    if (creds?.registryToken) return false; // the given token is all we have
    const all = parseChallenges(wwwAuthenticate);
    const found = all.find((c) => c.scheme === 'bearer') ?? all.find((c) => c.scheme === 'basic');
    if (!found) return false;
    // The challenge's scope names the request that failed; later requests bring their own.
    const { scope: _requestScope, ...params } = found.params;
    const ch: Challenge = { scheme: found.scheme, params };
    const previous = this.challenges.get(host);
    this.challenges.set(host, ch);
    if (ch.scheme === 'basic') return userPass(creds) !== undefined && previous?.scheme !== 'basic';
    // Bearer: drop any cached token for this scope (it was just rejected) and fetch anew.
    const key = this.tokenKey(host, ch, scope, creds);
    const hadToken = this.tokens.delete(key);
    if (hadToken && previous && sameChallenge(previous, ch)) return false;
    await this.fetchToken(host, ch, scope, creds, signal);
    return true;
  }

  private tokenKey(host: string, ch: Challenge, scope: string, creds: Credentials | undefined): string {
    const id = creds
      ? createHash('sha256')
          .update(JSON.stringify([creds.username, creds.password, creds.auth, creds.identityToken]))
          .digest('hex')
      : 'anonymous';
    return [host, ch.params['realm'] ?? '', ch.params['service'] ?? '', scopesFor(ch, scope).join(' '), id].join('\n');
  }

  private fetchToken(host: string, ch: Challenge, scope: string, creds: Credentials | undefined, signal?: AbortSignal): Promise<string> {
    const key = this.tokenKey(host, ch, scope, creds);
    const inflight = this.pending.get(key);
    if (inflight) return inflight;
    const p = this.requestToken(host, ch, scope, creds, signal)
      .then(({ token, ttlSeconds }) => {
        // Renew a little early so a token never expires mid-request.
        this.tokens.set(key, { token, expiresAt: this.now() + Math.max(1, ttlSeconds - 5) * 1000 });
        return token;
      })
      .finally(() => this.pending.delete(key));
    this.pending.set(key, p);
    return p;
  }

  private async requestToken(
    host: string,
    ch: Challenge,
    scope: string,
    creds: Credentials | undefined,
    signal?: AbortSignal,
  ): Promise<{ token: string; ttlSeconds: number }> {
    const realmRaw = ch.params['realm'];
    if (!realmRaw) throw errors.unauthenticated('registry.auth_failed', `registry ${host} sent a Bearer challenge without a realm`);
    let realm: URL;
    try {
      realm = new URL(realmRaw);
    } catch (cause) {
      throw errors.unauthenticated('registry.auth_failed', `registry ${host} sent an invalid token realm`, cause);
    }
    this.hosts.checkScheme(realm, `sending credentials for ${host}`);
    const scopes = scopesFor(ch, scope);
    const service = ch.params['service'];
    const up = userPass(creds);
    const headers: Record<string, string> = { accept: 'application/json' };
    let res;
    if (creds?.identityToken) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: this.clientId });
      if (service) form.set('service', service);
      if (scopes.length) form.set('scope', scopes.join(' '));
      headers['content-type'] = 'application/x-www-form-urlencoded';
      res = await this.transport.send({ method: 'POST', url: realm, headers, body: form.toString(), ...(signal ? { signal } : {}) });
    } else {
      const u = new URL(realm.href);
      if (service) u.searchParams.set('service', service);
      for (const s of scopes) u.searchParams.append('scope', s);
      if (up) {
        headers['authorization'] = basicHeader(up);
        u.searchParams.set('account', up.username);
      }
      res = await this.transport.send({ method: 'GET', url: u, headers, ...(signal ? { signal } : {}) });
    }
    this.logger.debug('registry token request', { host, realm_host: realm.host, status: res.status, scopes: scopes.join(' ') });
    if (res.status === 401 || res.status === 403) {
      await discard(res.body);
      throw errors.unauthenticated(
        'registry.auth_failed',
        `authentication to registry ${host} failed: token service ${realm.host} rejected the ${up || creds?.identityToken ? 'credentials' : 'anonymous request'} (HTTP ${res.status})`,
      );
    }
    if (res.status !== 200) {
      await discard(res.body);
      throw errors.unavailable('registry.token_service_failed', `token service ${realm.host} for registry ${host} answered HTTP ${res.status}`);
    }
    const raw = await readCapped(res.body, TOKEN_BODY_MAX, () =>
      errors.unavailable('registry.token_service_failed', `token service ${realm.host} for registry ${host} sent an oversized response`),
    );
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(raw.toString('utf8')) as typeof parsed;
    } catch (cause) {
      throw errors.unavailable('registry.token_service_failed', `token service ${realm.host} for registry ${host} sent invalid JSON`, cause);
    }
    const token = typeof parsed.access_token === 'string' && parsed.access_token ? parsed.access_token : parsed.token;
    if (typeof token !== 'string' || token === '') {
      throw errors.unavailable('registry.token_service_failed', `token service ${realm.host} for registry ${host} sent no token`);
    }
    const ttl = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : DEFAULT_TOKEN_TTL_S;
    return { token, ttlSeconds: ttl };
  }
}

function basicHeader(up: UserPass): string {
  return `Basic ${Buffer.from(`${up.username}:${up.password}`, 'utf8').toString('base64')}`;
}

function sameChallenge(a: Challenge, b: Challenge): boolean {
  return a.scheme === b.scheme && a.params['realm'] === b.params['realm'] && a.params['service'] === b.params['service'];
}

/** Scopes to ask the token service for: ours, plus any the stored challenge names. */
function scopesFor(ch: Challenge, scope: string): string[] {
  const set = new Set<string>([scope]);
  const fromChallenge = ch.params['scope'];
  if (fromChallenge) for (const s of fromChallenge.split(' ')) if (s) set.add(s);
  return [...set];
}
