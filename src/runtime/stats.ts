/** Decoding the Any a shim returns from Stats into cgroup v1 or v2 metrics. */
import { fromBinary } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';
import { errors } from '../errors.js';
import * as V1 from '../api/cgroups/stats/v1/metrics_pb.js';
import * as V2 from '../api/cgroups/cgroup2/stats/metrics_pb.js';

export type TaskMetrics = { cgroup: 'v1'; metrics: V1.Metrics } | { cgroup: 'v2'; metrics: V2.Metrics };

export function decodeMetrics(any: Any | undefined): TaskMetrics {
  if (!any) throw errors.internal('runtime.stats_empty', 'shim returned no stats');
  const name = any.typeUrl.slice(any.typeUrl.lastIndexOf('/') + 1);
  if (name === V1.MetricsSchema.typeName) return { cgroup: 'v1', metrics: fromBinary(V1.MetricsSchema, any.value) };
  if (name === V2.MetricsSchema.typeName) return { cgroup: 'v2', metrics: fromBinary(V2.MetricsSchema, any.value) };
  throw errors.internal('runtime.stats_type', `shim returned stats of unknown type ${any.typeUrl}`);
}
