/**
 * Which URLs serve a registry host: configured mirrors first (in order), then the host itself.
 *
 * Scheme policy: plain http is used only for an endpoint the config names with `http://`, or
 * for a loopback host; everything else is https. Redirects and token realms are held to the
 * same policy (see `httpAllowed`), so a registry cannot downgrade us to cleartext elsewhere.
 */
import { isIP } from 'node:net';
import { errors } from '../errors.js';

export interface MirrorConfig {
  /** Endpoint URLs, tried in order. Without a scheme, https is assumed. */
  endpoints: string[];
}

/** Registry host (e.g. `docker.io`, `localhost:5000`, or `*` for every host) → its mirrors. */
export type MirrorsConfig = Record<string, MirrorConfig>;

export interface Endpoint {
  /** API root, normally `<scheme>://<host>/v2`. */
  url: URL;
  /** `host[:port]` of the endpoint; what credentials and tokens are keyed on. */
  host: string;
  /** The registry host named in the image reference (`docker.io`, `quay.io`, …). */
  upstream: string;
  /** True for a configured mirror that is not the upstream host itself. */
  mirror: boolean;
}

export const DOCKER_HUB_HOST = 'docker.io';
export const DOCKER_HUB_ENDPOINT = 'https://registry-1.docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/** Host part without port or IPv6 brackets. */
function hostname(hostAndPort: string): string {
  if (hostAndPort.startsWith('[')) {
    const end = hostAndPort.indexOf(']');
    return end === -1 ? hostAndPort : hostAndPort.slice(1, end);
  }
  const colon = hostAndPort.lastIndexOf(':');
  return colon === -1 ? hostAndPort : hostAndPort.slice(0, colon);
}

/**
 * `localhost`, 127.0.0.0/8 or ::1 (with or without a port). Not `*.localhost`: such a name is
 * whatever DNS says, and plain http to it would be cleartext to anywhere.
 */
export function isLoopbackHost(hostAndPort: string): boolean {
  const h = hostname(hostAndPort).toLowerCase();
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1';
  return false;
}

/** Same registry, accounting for Docker Hub's several names. */
export function sameRegistryHost(a: string, b: string): boolean {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  return x === y || (DOCKER_HUB_ALIASES.has(x) && DOCKER_HUB_ALIASES.has(y));
}

function parseEndpointUrl(raw: string, where: string): URL {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `https://${raw}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch (cause) {
    throw errors.invalidArgument('registry.invalid_endpoint', `invalid registry endpoint "${raw}" for ${where}`, cause);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw errors.invalidArgument('registry.invalid_endpoint', `registry endpoint "${raw}" for ${where} must be http(s)`);
  }
  if (u.username || u.password || u.search || u.hash) {
    throw errors.invalidArgument('registry.invalid_endpoint', `registry endpoint "${raw}" for ${where} must not carry credentials, query or fragment`);
  }
  // A path other than "/" replaces the default "/v2" API root (as containerd's mirror config).
  const path = u.pathname.replace(/\/+$/, '');
  u.pathname = path === '' ? '/v2' : path;
  return u;
}

/** Validate every endpoint (config errors surface at startup or reload) and list the http:// hosts. */
function plainHttpHostsOf(mirrors: MirrorsConfig): Set<string> {
  const out = new Set<string>();
  for (const [host, cfg] of Object.entries(mirrors)) {
    for (const e of cfg.endpoints) {
      const u = parseEndpointUrl(e, host);
      if (u.protocol === 'http:') out.add(u.host.toLowerCase());
    }
  }
  return out;
}

export class RegistryHosts {
  private mirrors: MirrorsConfig;
  /** Hosts the config names with an explicit http:// endpoint. */
  private plainHttpHosts: Set<string>;

  constructor(mirrors: MirrorsConfig = {}) {
    this.plainHttpHosts = plainHttpHostsOf(mirrors);
    this.mirrors = mirrors;
  }

  /**
   * Replace the mirror config (config reload). Validates first: on a bad endpoint it throws and
   * the old config stays. Requests already under way keep the endpoint they are on; every
   * later request (a pull's next blob included) sees the new config.
   */
  update(mirrors: MirrorsConfig): void {
    const plain = plainHttpHostsOf(mirrors);
    this.mirrors = mirrors;
    this.plainHttpHosts = plain;
  }

  /** May we talk plain http to this host (for redirects, token realms, endpoints)? */
  httpAllowed(hostAndPort: string): boolean {
    return isLoopbackHost(hostAndPort) || this.plainHttpHosts.has(hostAndPort.toLowerCase());
  }

  /** Throws unless `url` is https or an http URL the policy allows. */
  checkScheme(url: URL, purpose: string): void {
    if (url.protocol === 'https:') return;
    if (url.protocol === 'http:' && this.httpAllowed(url.host)) return;
    throw errors.permissionDenied(
      'registry.insecure_url',
      `refusing ${purpose} to ${url.protocol}//${url.host}: plain http is allowed only for loopback hosts and endpoints configured with http://`,
    );
  }

  /**
   * Checks a redirect from `from` to `to`: the scheme policy, and no plain-http hop to a
   * loopback port unless the redirecting host is itself loopback (a remote registry must not
   * make berthd talk to services listening on the node's loopback).
   */
  checkRedirect(from: URL, to: URL): void {
    this.checkScheme(to, `a redirect from ${from.host}`);
    if (to.protocol === 'http:' && isLoopbackHost(to.host) && !isLoopbackHost(from.host)) {
      throw errors.permissionDenied('registry.insecure_url', `refusing a redirect from ${from.host} to ${to.protocol}//${to.host}: a loopback address`);
    }
  }

  /** Endpoints for a registry host, in the order to try them. */
  endpoints(upstream: string): Endpoint[] {
    const cfg = this.mirrors[upstream] ?? this.mirrors['*'];
    const out: Endpoint[] = [];
    const seen = new Set<string>();
    const add = (url: URL, mirror: boolean) => {
      const key = url.href;
      if (seen.has(key)) return;
      seen.add(key);
      out.push({ url, host: url.host, upstream, mirror });
    };
    for (const e of cfg?.endpoints ?? []) {
      const url = parseEndpointUrl(e, upstream);
      add(url, !sameRegistryHost(url.host, upstream));
    }
    add(this.upstreamUrl(upstream), false);
    return out;
  }

  private upstreamUrl(upstream: string): URL {
    if (upstream === DOCKER_HUB_HOST) return parseEndpointUrl(DOCKER_HUB_ENDPOINT, upstream);
    const scheme = isLoopbackHost(upstream) ? 'http' : 'https';
    return parseEndpointUrl(`${scheme}://${upstream}`, upstream);
  }
}

/** URL of an API path on an endpoint; mirrors get `ns=<upstream>` so they know the source. */
export function endpointUrl(endpoint: Endpoint, apiPath: string): URL {
  const u = new URL(endpoint.url.href);
  u.pathname = `${u.pathname}/${apiPath.replace(/^\/+/, '')}`;
  if (endpoint.mirror) u.searchParams.set('ns', endpoint.upstream);
  return u;
}
