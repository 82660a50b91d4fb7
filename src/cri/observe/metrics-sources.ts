/** What berthd's Prometheus gauges read: records by state and live shims, at scrape time. */
import type { BerthdMetricSources } from '../../metrics/index.js';
import { CRI_NAMESPACE } from '../server/instrument.js';
import type { RuntimeContext } from '../server/runtime-context.js';

function countBy<T>(list: T[], key: (x: T) => string, zeroes: string[]): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries(zeroes.map((z) => [z, 0]));
  for (const x of list) out[key(x)] = (out[key(x)] ?? 0) + 1;
  return out;
}

export function metricSources(ctx: RuntimeContext): BerthdMetricSources {
  return {
    // Pods of every namespace that holds containers, plus the CRI's.
    pods: () => {
      const namespaces = new Set([CRI_NAMESPACE, ...ctx.containers.all().map((c) => c.namespace)]);
      return countBy(
        [...namespaces].flatMap((ns) => ctx.sandboxes.list(ns)),
        (s) => s.state,
        ['ready', 'notready'],
      );
    },
    containers: () => countBy(ctx.containers.all(), (c) => c.record.state, ['created', 'running', 'exited', 'unknown']),
    shims: () => {
      const addresses = new Set<string>();
      for (const t of ctx.tasks.list()) {
        const s = ctx.tasks.shimOf(t.namespace, t.id);
        if (s) addresses.add(s.address);
      }
      return addresses.size;
    },
  };
}
