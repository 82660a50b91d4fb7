/**
 * CNI result parsing: turns a plugin's ADD output (spec 1.0/1.1, 0.3.x/0.4.0 with per-IP
 * "version", or legacy 0.1/0.2 ip4/ip6 objects) into one normalized shape. The raw JSON is
 * kept separately by the caller: it is what goes back to plugins as prevResult, unchanged.
 */

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  /** Netns path for interfaces inside the sandbox; absent for host-side ones. */
  sandbox?: string;
}

export interface CniIpConfig {
  /** CIDR, e.g. "198.18.3.2/24". */
  address: string;
  gateway?: string;
  /** Index into interfaces, when the plugin reported it. */
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
}

export interface CniDns {
  nameservers: string[];
  domain?: string;
  search: string[];
  options: string[];
}

export interface CniResult {
  cniVersion: string;
  interfaces: CniInterface[];
  ips: CniIpConfig[];
  routes: CniRoute[];
  dns: CniDns;
}

export class ResultError extends Error {}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const strList = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

function parseRoutes(v: unknown): CniRoute[] {
  if (!Array.isArray(v)) return [];
  const out: CniRoute[] = [];
  for (const r of v) {
    if (!isObj(r) || !str(r['dst'])) throw new ResultError('route without dst');
    const gw = str(r['gw']);
    out.push(gw ? { dst: r['dst'] as string, gw } : { dst: r['dst'] as string });
  }
  return out;
}

function parseDns(v: unknown): CniDns {
  if (!isObj(v)) return { nameservers: [], search: [], options: [] };
  const domain = str(v['domain']);
  return {
    nameservers: strList(v['nameservers']),
    ...(domain ? { domain } : {}),
    search: strList(v['search']),
    options: strList(v['options']),
  };
}

function parseLegacy(doc: Obj, cniVersion: string): CniResult {
  const ips: CniIpConfig[] = [];
  const routes: CniRoute[] = [];
  for (const key of ['ip4', 'ip6']) {
    const ipc = doc[key];
    if (!isObj(ipc)) continue;
    const address = str(ipc['ip']);
    if (!address) throw new ResultError(`${key}.ip is missing`);
    const gateway = str(ipc['gateway']);
    ips.push(gateway ? { address, gateway } : { address });
    routes.push(...parseRoutes(ipc['routes']));
  }
  return { cniVersion, interfaces: [], ips, routes, dns: parseDns(doc['dns']) };
}

/** Parses a result document. Throws ResultError on a malformed one. */
export function parseResult(doc: unknown): CniResult {
  if (!isObj(doc)) throw new ResultError('result is not a JSON object');
  const cniVersion = str(doc['cniVersion']) ?? '';
  if (cniVersion === '0.1.0' || cniVersion === '0.2.0' || ('ip4' in doc && !('ips' in doc))) {
    return parseLegacy(doc, cniVersion);
  }
  const interfaces: CniInterface[] = [];
  if (doc['interfaces'] !== undefined && !Array.isArray(doc['interfaces'])) throw new ResultError('interfaces is not a list');
  for (const i of (doc['interfaces'] as unknown[] | undefined) ?? []) {
    if (!isObj(i) || !str(i['name'])) throw new ResultError('interface without name');
    const iface: CniInterface = { name: i['name'] as string };
    const mac = str(i['mac']);
    if (mac) iface.mac = mac;
    if (typeof i['mtu'] === 'number') iface.mtu = i['mtu'];
    const sandbox = str(i['sandbox']);
    if (sandbox) iface.sandbox = sandbox;
    interfaces.push(iface);
  }
  const ips: CniIpConfig[] = [];
  if (doc['ips'] !== undefined && !Array.isArray(doc['ips'])) throw new ResultError('ips is not a list');
  for (const ip of (doc['ips'] as unknown[] | undefined) ?? []) {
    if (!isObj(ip) || !str(ip['address'])) throw new ResultError('ip without address');
    const c: CniIpConfig = { address: ip['address'] as string };
    const gw = str(ip['gateway']);
    if (gw) c.gateway = gw;
    const idx = ip['interface'];
    if (typeof idx === 'number') {
      if (!Number.isInteger(idx) || idx < 0 || idx >= interfaces.length) {
        throw new ResultError(`ip ${c.address} names interface index ${idx} but there are ${interfaces.length} interfaces`);
      }
      c.interface = idx;
    }
    ips.push(c);
  }
  return { cniVersion, interfaces, ips, routes: parseRoutes(doc['routes']), dns: parseDns(doc['dns']) };
}

/** "198.18.0.2/24" → "198.18.0.2". */
export function stripPrefix(cidr: string): string {
  const slash = cidr.indexOf('/');
  return slash < 0 ? cidr : cidr.slice(0, slash);
}

/**
 * The pod's IPs: addresses on the sandbox interface `ifName` (or, when the plugin did not say
 * which interface an IP belongs to, every IP), IPv4 first as CRI expects the primary IP to be
 * the IPv4 one in dual-stack pods. Order within a family is the plugin's.
 */
export function podIps(result: CniResult, ifName: string): string[] {
  const chosen = result.ips.filter((ip) => {
    if (ip.interface === undefined) return true;
    const iface = result.interfaces[ip.interface];
    return iface !== undefined && iface.name === ifName && iface.sandbox !== undefined;
  });
  const addrs = chosen.map((ip) => stripPrefix(ip.address));
  return [...addrs.filter((a) => !a.includes(':')), ...addrs.filter((a) => a.includes(':'))];
}
