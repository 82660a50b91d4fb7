/**
 * Building what a plugin receives besides its own config: the CNI_ARGS string, the
 * capability-gated runtimeConfig, and the per-plugin stdin document (spec: "deriving
 * execution configuration from plugin configuration").
 */
import { errors } from '../errors.js';
import type { NetworkConfigList, PluginConfig } from './cni-config.js';

/** CRI PortMapping (protocol as CRI spells it: TCP / UDP / SCTP). */
export interface PortMapping {
  protocol?: string;
  containerPort: number;
  hostPort: number;
  hostIp?: string;
}

/** runtimeConfig.portMappings entry as plugins (portmap) read it. */
export interface CniPortMapping {
  hostPort: number;
  containerPort: number;
  protocol: string;
  hostIP?: string;
}

export interface BandwidthConfig {
  /** bits per second */
  ingressRate?: number;
  ingressBurst?: number;
  egressRate?: number;
  egressBurst?: number;
}

export interface DnsConfig {
  servers?: string[];
  searches?: string[];
  options?: string[];
}

// A value containing ';' could add a CNI_ARGS key of its own choosing (e.g. IP=...), and '='
// could confuse the key/value split: reject both rather than escape (the format has no escaping).
const ARG_SAFE = /^[^;=\0\n]*$/;

/** Joins key/value pairs into CNI_ARGS ("K=V;K2=V2"). InvalidArgument on an unsafe value. */
export function buildCniArgs(pairs: ReadonlyArray<readonly [string, string]>): string {
  return pairs
    .map(([k, v]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw errors.invalidArgument('cni.bad_arg', `CNI_ARGS key ${JSON.stringify(k)} is invalid`);
      if (!ARG_SAFE.test(v)) throw errors.invalidArgument('cni.bad_arg', `CNI_ARGS value for ${k} must not contain ';', '=' or newlines: ${JSON.stringify(v)}`);
      return `${k}=${v}`;
    })
    .join(';');
}

/** The Kubernetes pod args every CRI runtime passes, IgnoreUnknown first. */
export function podArgs(p: { podNamespace: string; podName: string; id: string; podUid: string }): Array<[string, string]> {
  return [
    ['IgnoreUnknown', '1'],
    ['K8S_POD_NAMESPACE', p.podNamespace],
    ['K8S_POD_NAME', p.podName],
    ['K8S_POD_INFRA_CONTAINER_ID', p.id],
    ['K8S_POD_UID', p.podUid],
  ];
}

function validPort(n: number): boolean {
  return Number.isInteger(n) && n > 0 && n <= 65535;
}

/** CRI port mappings → runtimeConfig.portMappings: only entries with a host port. */
export function toCniPortMappings(mappings: readonly PortMapping[]): CniPortMapping[] {
  const out: CniPortMapping[] = [];
  for (const m of mappings) {
    if (!m.hostPort || m.hostPort <= 0) continue;
    if (!validPort(m.hostPort) || !validPort(m.containerPort)) {
      throw errors.invalidArgument('cni.bad_port_mapping', `port mapping ${m.hostPort}->${m.containerPort} is out of range 1-65535`);
    }
    const protocol = (m.protocol ?? 'TCP').toLowerCase();
    if (protocol !== 'tcp' && protocol !== 'udp' && protocol !== 'sctp') {
      throw errors.invalidArgument('cni.bad_port_mapping', `port mapping protocol ${JSON.stringify(m.protocol)} is not TCP, UDP or SCTP`);
    }
    const e: CniPortMapping = { hostPort: m.hostPort, containerPort: m.containerPort, protocol };
    if (m.hostIp) e.hostIP = m.hostIp;
    out.push(e);
  }
  return out;
}

/**
 * Only the capabilities a plugin declares (capabilities: {key: true}) reach it as
 * runtimeConfig; values that are undefined are not sent at all.
 */
export function runtimeConfigFor(plugin: PluginConfig, capabilityArgs: Record<string, unknown>): Record<string, unknown> | undefined {
  const caps = plugin.capabilities;
  if (!caps) return undefined;
  const rc: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(capabilityArgs)) {
    if (caps[k] === true && v !== undefined) rc[k] = v;
  }
  return Object.keys(rc).length > 0 ? rc : undefined;
}

/**
 * The stdin document for one plugin of a list: its own config with the list's name and
 * cniVersion, runtimeConfig for declared capabilities, and prevResult when there is one.
 */
export function pluginStdin(list: NetworkConfigList, plugin: PluginConfig, capabilityArgs: Record<string, unknown>, prevResult: unknown): string {
  const doc: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: list.cniVersion };
  const rc = runtimeConfigFor(plugin, capabilityArgs);
  if (rc)
    doc['runtimeConfig'] = {
      ...(typeof plugin['runtimeConfig'] === 'object' && plugin['runtimeConfig'] !== null ? (plugin['runtimeConfig'] as Record<string, unknown>) : {}),
      ...rc,
    };
  if (prevResult !== undefined) doc['prevResult'] = prevResult;
  else delete doc['prevResult'];
  return JSON.stringify(doc);
}
