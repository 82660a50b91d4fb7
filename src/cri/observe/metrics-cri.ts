/**
 * ListMetricDescriptors / ListPodSandboxMetrics: cAdvisor-named metrics computed from the same
 * samples as the stats RPCs. Container metrics are labelled (container, pod, namespace); pod
 * network metrics (interface, pod, namespace). Values are UInt64: CPU seconds are reported in
 * whole seconds as cAdvisor's counter would truncate them on this type — kubelet converts.
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import { MetricType, type MetricSchema } from '../../api/cri/runtime/v1/api_pb.js';
import type { RuntimeContext } from '../server/runtime-context.js';
import type { CgroupSample } from './container-stats.js';
import { collectSandboxStats } from './sandbox-stats.js';
import { writePages } from '../server/stream-pages.js';
import type { RuntimeHandlers } from '../server/server.js';

type MetricInit = MessageInitShape<typeof MetricSchema>;

interface Descriptor {
  name: string;
  help: string;
  labelKeys: string[];
  type: MetricType;
}

const CONTAINER_LABELS = ['container', 'pod', 'namespace'];
const NETWORK_LABELS = ['interface', 'pod', 'namespace'];

/** Container-level metrics and how each is read from a sample. */
const CONTAINER_METRICS: Array<Descriptor & { value: (s: CgroupSample) => bigint }> = [
  {
    name: 'container_cpu_usage_seconds_total',
    help: 'Cumulative cpu time consumed in seconds.',
    labelKeys: CONTAINER_LABELS,
    type: MetricType.COUNTER,
    value: (s) => s.cpuNanos / 1_000_000_000n,
  },
  {
    name: 'container_memory_working_set_bytes',
    help: 'Current working set in bytes.',
    labelKeys: CONTAINER_LABELS,
    type: MetricType.GAUGE,
    value: (s) => s.workingSet,
  },
  {
    name: 'container_memory_usage_bytes',
    help: 'Current memory usage in bytes, including all memory regardless of when it was accessed.',
    labelKeys: CONTAINER_LABELS,
    type: MetricType.GAUGE,
    value: (s) => s.memUsage,
  },
  { name: 'container_memory_rss', help: 'Size of RSS in bytes.', labelKeys: CONTAINER_LABELS, type: MetricType.GAUGE, value: (s) => s.rss },
  {
    name: 'container_memory_failures_total',
    help: 'Cumulative count of memory allocation failures (page faults).',
    labelKeys: CONTAINER_LABELS,
    type: MetricType.COUNTER,
    value: (s) => s.pageFaults,
  },
  {
    name: 'container_processes',
    help: 'Number of processes running inside the container.',
    labelKeys: CONTAINER_LABELS,
    type: MetricType.GAUGE,
    value: (s) => s.pids,
  },
];

const NETWORK_METRICS: Descriptor[] = [
  { name: 'container_network_receive_bytes_total', help: 'Cumulative count of bytes received.', labelKeys: NETWORK_LABELS, type: MetricType.COUNTER },
  { name: 'container_network_transmit_bytes_total', help: 'Cumulative count of bytes transmitted.', labelKeys: NETWORK_LABELS, type: MetricType.COUNTER },
  {
    name: 'container_network_receive_errors_total',
    help: 'Cumulative count of errors encountered while receiving.',
    labelKeys: NETWORK_LABELS,
    type: MetricType.COUNTER,
  },
  {
    name: 'container_network_transmit_errors_total',
    help: 'Cumulative count of errors encountered while transmitting.',
    labelKeys: NETWORK_LABELS,
    type: MetricType.COUNTER,
  },
];

export const METRIC_DESCRIPTORS: Descriptor[] = [...CONTAINER_METRICS, ...NETWORK_METRICS];

export const listMetricDescriptors =
  (_ctx: RuntimeContext): NonNullable<RuntimeHandlers['listMetricDescriptors']> =>
  async () => ({
    descriptors: METRIC_DESCRIPTORS.map((d) => ({ name: d.name, help: d.help, labelKeys: d.labelKeys })),
  });

export function containerMetrics(s: CgroupSample, labels: string[]): MetricInit[] {
  return CONTAINER_METRICS.map((d) => ({ name: d.name, timestamp: s.timestamp, metricType: d.type, labelValues: labels, value: { value: d.value(s) } }));
}

export const listPodSandboxMetrics =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['listPodSandboxMetrics']> =>
  async (_req, call) => {
    const podMetrics = [];
    for (const sb of ctx.sandboxes.list(call.namespace)) {
      if (sb.state !== 'ready') continue;
      const { sample, net, containers } = await collectSandboxStats(ctx, call.namespace, sb);
      const metrics: MetricInit[] = [];
      // The pod-level series carry container="" as cAdvisor's pod cgroup does.
      if (sample) metrics.push(...containerMetrics(sample, ['', sb.meta.name, sb.meta.namespace]));
      for (const i of net ?? []) {
        const labels = [i.name, sb.meta.name, sb.meta.namespace];
        const ts = sample?.timestamp ?? 0n;
        const vals: Array<[string, bigint]> = [
          ['container_network_receive_bytes_total', i.rxBytes],
          ['container_network_transmit_bytes_total', i.txBytes],
          ['container_network_receive_errors_total', i.rxErrors],
          ['container_network_transmit_errors_total', i.txErrors],
        ];
        for (const [name, value] of vals) metrics.push({ name, timestamp: ts, metricType: MetricType.COUNTER, labelValues: labels, value: { value } });
      }
      const containerMetricsList = [];
      for (const { record: c, sample: cs } of containers) {
        if (cs) containerMetricsList.push({ containerId: c.id, metrics: containerMetrics(cs, [c.meta.name, sb.meta.name, sb.meta.namespace]) });
      }
      podMetrics.push({ podSandboxId: sb.id, metrics, containerMetrics: containerMetricsList });
    }
    return { podMetrics };
  };

/** RuntimeService/StreamPodSandboxMetrics: ListPodSandboxMetrics' items, in pages. */
export const streamPodSandboxMetrics = (ctx: RuntimeContext): NonNullable<RuntimeHandlers['streamPodSandboxMetrics']> => {
  const list = listPodSandboxMetrics(ctx);
  return async (_req, write, call) => {
    const { podMetrics } = await list({ $typeName: 'runtime.v1.ListPodSandboxMetricsRequest' }, call);
    await writePages(podMetrics ?? [], (podSandboxMetrics) => ({ podSandboxMetrics }), write, call);
  };
};
