/**
 * berthd's metric families: per-RPC latency (via the CRI server's RpcObserver), image pulls,
 * pods, containers by state and shims. Gauges are computed at scrape time from the stores, so
 * they can never drift from the records.
 */
import * as grpc from '@grpc/grpc-js';
import { Registry, type Counter, type Histogram } from './registry.js';

/** What the scrape-time gauges read. */
export interface BerthdMetricSources {
  /** Pod sandboxes by state (ready / notready). */
  pods(): Record<string, number>;
  /** Containers by state (created / running / exited / unknown). */
  containers(): Record<string, number>;
  /** Live shim processes. */
  shims(): number;
}

export interface BerthdMetrics {
  registry: Registry;
  rpcDuration: Histogram;
  pulls: Counter;
  pullBytes: Counter;
  pullDuration: Histogram;
  /** For the CRI server (src/cri/server/instrument.ts RpcObserver). */
  observe(method: string, code: number, seconds: number): void;
  /** Record one finished pull. */
  pulled(ok: boolean, bytes: number, seconds: number): void;
}

const PULL_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export function berthdMetrics(src: BerthdMetricSources): BerthdMetrics {
  const registry = new Registry();
  const rpcDuration = registry.histogram('berth_rpc_duration_seconds', 'Latency of CRI and berth gRPC calls.', ['method', 'code']);
  const pulls = registry.counter('berth_image_pulls_total', 'Image pulls, by outcome.', ['result']);
  const pullBytes = registry.counter('berth_image_pull_bytes_total', 'Size (manifest, config and compressed layers) of successfully pulled images.');
  const pullDuration = registry.histogram('berth_image_pull_duration_seconds', 'Duration of image pulls.', ['result'], PULL_BUCKETS);
  registry.gauge('berth_pods', 'Pod sandboxes by state.', ['state']).collect = () =>
    Object.entries(src.pods()).map(([state, value]) => ({ labels: { state }, value }));
  registry.gauge('berth_containers', 'Containers by state.', ['state']).collect = () =>
    Object.entries(src.containers()).map(([state, value]) => ({ labels: { state }, value }));
  registry.gauge('berth_shims', 'Shim processes berthd is connected to.').collect = () => [{ labels: {}, value: src.shims() }];
  return {
    registry,
    rpcDuration,
    pulls,
    pullBytes,
    pullDuration,
    observe(method, code, seconds) {
      // "/runtime.v1.RuntimeService/Version" style full names; code as its gRPC name (OK, NOT_FOUND…).
      const short = method.startsWith('/') ? method.slice(1) : method;
      rpcDuration.observe({ method: short, code: grpc.status[code] ?? String(code) }, seconds);
    },
    pulled(ok, bytes, seconds) {
      const result = ok ? 'success' : 'failure';
      pulls.inc({ result });
      if (ok) pullBytes.inc({}, bytes);
      pullDuration.observe({ result }, seconds);
    },
  };
}
