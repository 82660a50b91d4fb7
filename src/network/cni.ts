/**
 * CniManager: attaches pod sandboxes to the default CNI network and detaches them.
 *
 * - setupPod: ADD through the plugin list in order, each plugin getting the previous one's
 *   result as prevResult; the final result is cached, then parsed into pod IPs. If any step
 *   fails, DEL runs for the whole list in reverse (spec: error handling for lists) so a failed
 *   setup leaves no reserved IP, no veth and no iptables rule, then the ADD error is thrown.
 * - teardownPod: DEL in reverse order with the cached ADD result as prevResult, using the
 *   config and args cached at ADD time. Idempotent: nothing cached and no config means
 *   nothing to undo; a netns that is already gone is passed as an empty CNI_NETNS, which the
 *   reference plugins accept for DEL (they still release IPAM and host-side state).
 * - status: re-reads conf_dir on every call (cheap: one small dir) so dropping a config in
 *   makes the node Ready without a restart; also checks every plugin binary exists, and for
 *   cniVersion >= 1.1.0 asks each plugin with STATUS.
 *
 * Every plugin exec is recorded as a span (plugin, command, start, duration) in the returned
 * value so callers can trace the pod start path.
 */
import { stat } from 'node:fs/promises';
import { errors, hasCode } from '../errors.js';
import { KeyedLock } from '../keyed-lock.js';
import { log as rootLog, type Logger } from '../log.js';
import { buildCniArgs, podArgs, pluginStdin, toCniPortMappings, type BandwidthConfig, type DnsConfig, type PortMapping } from './cni-args.js';
import { checkCacheKey, ResultCache, type CacheEntry } from './cni-cache.js';
import { compareVersions, loadConfigDir, type NetworkConfigList, type PluginConfig } from './cni-config.js';
import { execPlugin, findPlugin, type CniCommand } from './cni-exec.js';
import { parseResult, podIps, ResultError, type CniDns, type CniInterface, type CniResult, type CniRoute } from './cni-result.js';
import { isNetns } from './netns.js';

export interface CniManagerOptions {
  confDir: string;
  binDirs: string[];
  /** State dir for cached results (e.g. /var/lib/berth/cni). */
  cacheDir: string;
  logger?: Logger;
  /** Interface name inside the pod; default eth0. */
  ifName?: string;
  /** Per plugin exec; default 60 s. */
  pluginTimeoutMs?: number;
}

export interface PodNetworkRequest {
  /** Sandbox id (CNI_CONTAINERID). */
  id: string;
  netnsPath: string;
  podName: string;
  podNamespace: string;
  podUid: string;
  portMappings?: PortMapping[];
  dns?: DnsConfig;
  bandwidth?: BandwidthConfig;
  cgroupPath?: string;
  annotations?: Record<string, string>;
  /** Extra CNI_ARGS pairs appended after the Kubernetes ones. */
  extraArgs?: Array<[string, string]>;
}

export interface PluginSpan {
  plugin: string;
  command: CniCommand;
  network: string;
  /** Epoch milliseconds. */
  start: number;
  durationMs: number;
  ok: boolean;
}

export interface PodNetworkResult {
  network: string;
  /** Pod IPs on the pod interface, IPv4 first (the first one is the primary pod IP). */
  ips: string[];
  interfaces: CniInterface[];
  routes: CniRoute[];
  dns: CniDns;
  /** The final raw result of the chain. */
  raw: unknown;
  spans: PluginSpan[];
}

export interface TeardownRequest {
  id: string;
  netnsPath?: string;
  podName?: string;
  podNamespace?: string;
  podUid?: string;
  /** Only used when no cached ADD exists (then the current config and these args are used). */
  portMappings?: PortMapping[];
}

export interface NetworkStatus {
  ready: boolean;
  reason?: string;
  message?: string;
  /** Name of the default network when one is loaded. */
  network?: string;
}

export const NETWORK_NOT_READY_REASON = 'NetworkPluginNotReady';

export class CniManager {
  private confDir: string;
  private binDirs: string[];
  private readonly cache: ResultCache;
  private readonly log: Logger;
  private readonly ifName: string;
  private readonly timeoutMs: number;
  /** Serializes setup/teardown of one sandbox id (a Stop racing a slow Run). */
  private readonly locks = new KeyedLock();

  constructor(opts: CniManagerOptions) {
    this.confDir = opts.confDir;
    this.binDirs = [...opts.binDirs];
    this.cache = new ResultCache(opts.cacheDir);
    this.log = (opts.logger ?? rootLog).child({ component: 'cni' });
    this.ifName = opts.ifName ?? 'eth0';
    this.timeoutMs = opts.pluginTimeoutMs ?? 60_000;
  }

  /** The default network as currently on disk; FailedPrecondition when there is none. */
  /**
   * Point at another conf dir / plugin dirs (config reload). Pods set up before keep their
   * ADD-time config for DEL (it is cached); the next status, setup or teardown uses these.
   */
  reconfigure(opts: { confDir: string; binDirs: string[] }): void {
    this.confDir = opts.confDir;
    this.binDirs = [...opts.binDirs];
  }

  async loadNetwork(): Promise<NetworkConfigList> {
    const { network, rejected } = await loadConfigDir(this.confDir);
    for (const r of rejected) this.log.warn('skipping CNI config', { reason: r });
    if (!network) {
      const why = rejected.length > 0 ? `: ${rejected.join('; ')}` : `: no network config found in ${this.confDir}`;
      throw errors.failedPrecondition('cni.not_ready', `cni config uninitialized${why}`);
    }
    return network;
  }

  async status(): Promise<NetworkStatus> {
    let net: NetworkConfigList;
    try {
      net = await this.loadNetwork();
    } catch (err) {
      return { ready: false, reason: NETWORK_NOT_READY_REASON, message: (err as Error).message };
    }
    try {
      for (const type of pluginTypes(net)) await findPlugin(this.binDirs, type);
    } catch (err) {
      return { ready: false, reason: NETWORK_NOT_READY_REASON, message: `cni plugin not initialized: ${(err as Error).message}`, network: net.name };
    }
    if (compareVersions(net.cniVersion, '1.1.0') >= 0) {
      try {
        for (const p of net.plugins) {
          await this.exec(net, p, 'STATUS', { CNI_COMMAND: 'STATUS', CNI_PATH: this.binDirs.join(':') }, undefined, {}, []);
        }
      } catch (err) {
        return { ready: false, reason: NETWORK_NOT_READY_REASON, message: (err as Error).message, network: net.name };
      }
    }
    return { ready: true, network: net.name };
  }

  setupPod(req: PodNetworkRequest): Promise<PodNetworkResult> {
    return this.serialize(req.id, () => this.doSetup(req));
  }

  teardownPod(req: TeardownRequest): Promise<{ spans: PluginSpan[] }> {
    return this.serialize(req.id, () => this.doTeardown(req));
  }

  /** CHECK for each cached attachment (skipped for disableCheck or versions before 0.4.0). */
  checkPod(req: { id: string; netnsPath: string }): Promise<{ spans: PluginSpan[] }> {
    return this.serialize(req.id, async () => {
      const spans: PluginSpan[] = [];
      const entries = await this.cache.findByContainer(req.id, this.ifName);
      if (entries.length === 0) throw errors.notFound('cni.not_attached', `sandbox ${req.id} has no CNI attachment`);
      for (const e of entries) {
        if (e.config.disableCheck || compareVersions(e.config.cniVersion, '0.4.0') < 0) continue;
        const env = this.cniEnv('CHECK', req.id, req.netnsPath, buildCniArgs(e.cniArgs));
        for (const p of e.config.plugins) await this.exec(e.config, p, 'CHECK', env, e.result, e.capabilityArgs, spans);
      }
      return { spans };
    });
  }

  private async doSetup(req: PodNetworkRequest): Promise<PodNetworkResult> {
    checkCacheKey('sandbox id', req.id);
    if (!req.netnsPath) throw errors.invalidArgument('cni.no_netns', `sandbox ${req.id}: network namespace path is empty`);
    const net = await this.loadNetwork();
    const cniArgs: Array<[string, string]> = [...podArgs(req), ...(req.extraArgs ?? [])];
    const env = this.cniEnv('ADD', req.id, req.netnsPath, buildCniArgs(cniArgs));
    const capabilityArgs = this.capabilityArgs(req);
    const spans: PluginSpan[] = [];
    let prev: unknown;
    try {
      for (const p of net.plugins) {
        const out = await this.exec(net, p, 'ADD', env, prev, capabilityArgs, spans);
        if (out === undefined) {
          throw errors.internal('cni.plugin_bad_output', `CNI plugin ${p.type} (network ${net.name}) ADD printed no result`);
        }
        prev = out;
      }
      let parsed: CniResult;
      try {
        parsed = parseResult(prev);
      } catch (err) {
        const why = err instanceof ResultError ? err.message : String(err);
        throw errors.internal('cni.bad_result', `network ${net.name}: invalid CNI result: ${why}`, err);
      }
      const entry: CacheEntry = {
        kind: 'berthCniCacheV1',
        containerId: req.id,
        ifName: this.ifName,
        networkName: net.name,
        netnsPath: req.netnsPath,
        config: net,
        cniArgs,
        capabilityArgs,
        result: prev,
      };
      await this.cache.write(entry);
      const ips = podIps(parsed, this.ifName);
      this.log.debug('pod network attached', { sandbox: req.id, network: net.name, ips: ips.join(',') });
      return { network: net.name, ips, interfaces: parsed.interfaces, routes: parsed.routes, dns: parsed.dns, raw: prev, spans };
    } catch (err) {
      await this.rollback(net, req, env, prev, capabilityArgs, spans, err);
      throw err;
    }
  }

  /** DEL for every plugin (even those not reached), reverse order, after a failed ADD. */
  private async rollback(
    net: NetworkConfigList,
    req: PodNetworkRequest,
    addEnv: Record<string, string>,
    prev: unknown,
    capabilityArgs: Record<string, unknown>,
    spans: PluginSpan[],
    cause: unknown,
  ): Promise<void> {
    const env = { ...addEnv, CNI_COMMAND: 'DEL' };
    for (const p of [...net.plugins].reverse()) {
      try {
        await this.exec(net, p, 'DEL', env, prev, capabilityArgs, spans);
      } catch (err) {
        // Keep going: the point is to release whatever the partial ADD reserved.
        this.log.warn('CNI rollback DEL failed', { sandbox: req.id, plugin: p.type, err: (err as Error).message, cause: (cause as Error).message });
      }
    }
    await this.cache.remove(net.name, req.id, this.ifName).catch(() => undefined);
  }

  private async doTeardown(req: TeardownRequest): Promise<{ spans: PluginSpan[] }> {
    checkCacheKey('sandbox id', req.id);
    const spans: PluginSpan[] = [];
    let entries = await this.cache.findByContainer(req.id, this.ifName);
    if (entries.length === 0) {
      // No record of an ADD (crash before the cache write, or a pre-cache sandbox): DEL with
      // the current config is still the best way to release anything a plugin holds.
      const { network } = await loadConfigDir(this.confDir);
      if (!network) {
        this.log.debug('no CNI attachment and no config: nothing to tear down', { sandbox: req.id });
        return { spans };
      }
      const capabilityArgs = this.capabilityArgs({ portMappings: req.portMappings ?? [] });
      const cniArgs = [...podArgs({ id: req.id, podName: req.podName ?? '', podNamespace: req.podNamespace ?? '', podUid: req.podUid ?? '' })];
      entries = [
        {
          kind: 'berthCniCacheV1',
          containerId: req.id,
          ifName: this.ifName,
          networkName: network.name,
          netnsPath: req.netnsPath ?? '',
          config: network,
          cniArgs,
          capabilityArgs,
          result: undefined,
        },
      ];
    }
    for (const e of entries) {
      const netns = await usableNetns(req.netnsPath ?? e.netnsPath);
      const env = this.cniEnv('DEL', req.id, netns, buildCniArgs(e.cniArgs));
      // Spec: stop at the first error; the cache stays so a retry repeats the full DEL.
      for (const p of [...e.config.plugins].reverse()) {
        await this.exec(e.config, p, 'DEL', env, e.result, e.capabilityArgs, spans);
      }
      await this.cache.remove(e.networkName, req.id, this.ifName);
    }
    return { spans };
  }

  private capabilityArgs(req: Partial<PodNetworkRequest>): Record<string, unknown> {
    const args: Record<string, unknown> = {};
    const pm = toCniPortMappings(req.portMappings ?? []);
    if (pm.length > 0) args['portMappings'] = pm;
    if (req.bandwidth) args['bandwidth'] = req.bandwidth;
    if (req.dns) args['dns'] = req.dns;
    if (req.cgroupPath) args['cgroupPath'] = req.cgroupPath;
    if (req.annotations) args['io.kubernetes.cri.pod-annotations'] = req.annotations;
    return args;
  }

  private cniEnv(command: CniCommand, id: string, netns: string, args: string): Record<string, string> {
    return {
      CNI_COMMAND: command,
      CNI_CONTAINERID: id,
      CNI_NETNS: netns,
      CNI_IFNAME: this.ifName,
      CNI_ARGS: args,
      CNI_PATH: this.binDirs.join(':'),
    };
  }

  private async exec(
    net: NetworkConfigList,
    plugin: PluginConfig,
    command: CniCommand,
    env: Record<string, string>,
    prevResult: unknown,
    capabilityArgs: Record<string, unknown>,
    spans: PluginSpan[],
  ): Promise<unknown> {
    const start = Date.now();
    const t0 = performance.now();
    let ok = false;
    try {
      const path = await findPlugin(this.binDirs, plugin.type);
      const { output, stderr } = await execPlugin({
        plugin: plugin.type,
        path,
        command,
        cniEnv: { ...env, CNI_COMMAND: command },
        stdin: pluginStdin(net, plugin, capabilityArgs, prevResult),
        timeoutMs: this.timeoutMs,
        network: net.name,
      });
      if (stderr.trim()) this.log.debug('CNI plugin stderr', { plugin: plugin.type, command, stderr: stderr.trim().slice(0, 1024) });
      ok = true;
      return output;
    } catch (err) {
      if (hasCode(err, 'cni.plugin_not_found')) {
        throw err.wrap(`network ${net.name} ${command}`);
      }
      throw err;
    } finally {
      spans.push({ plugin: plugin.type, command, network: net.name, start, durationMs: performance.now() - t0, ok });
    }
  }

  private serialize<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(id, fn);
  }
}

/** Plugin binaries a list needs: each plugin type plus nested IPAM types. */
function pluginTypes(net: NetworkConfigList): string[] {
  const out = new Set<string>();
  for (const p of net.plugins) {
    out.add(p.type);
    const ipam = p['ipam'];
    if (typeof ipam === 'object' && ipam !== null && typeof (ipam as Record<string, unknown>)['type'] === 'string') {
      out.add((ipam as Record<string, string>)['type'] as string);
    }
  }
  return [...out];
}

/**
 * The netns path to hand a DEL: empty when the namespace is gone, because plugins fail on a
 * path that exists but is no longer a namespace, while they accept an empty one for DEL.
 */
async function usableNetns(path: string): Promise<string> {
  if (!path) return '';
  try {
    await stat(path);
  } catch {
    return '';
  }
  if (path.startsWith('/proc/')) return path;
  return (await isNetns(path)) ? path : '';
}
