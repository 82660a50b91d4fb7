/**
 * berth.v1.Berth/Trace: the spans the tracer holds for a pod (RunPodSandbox steps, and the
 * CreateContainer/StartContainer steps K/L record under the pod id), plus pull spans of the
 * images its containers use (recorded under `pull:<reference>`), ordered by start.
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { SpanSchema } from '../../api/berth/v1/berth_pb.js';
import { errors, isBerthError } from '../../errors.js';
import { findSandbox, type RuntimeContext, type TraceSpan, type Tracer } from '../server/runtime-context.js';
import type { BerthHandlers } from '../server/server.js';

type SpanInit = MessageInitShape<typeof SpanSchema>;

/** Tracer key of the pull of one image reference. */
export const pullTraceKey = (ref: string): string => `pull:${ref}`;

/** Record a finished pull as a span (the image service itself does not know the tracer). */
export function recordPullSpan(tracer: Tracer, ref: string, startMs: number, durationMs: number, attrs: Record<string, string | number>, error?: string): void {
  tracer.record(pullTraceKey(ref), { name: 'pull', start: startMs, durationMs, attrs: { image: ref, ...attrs }, error });
}

/** Milliseconds (fractional) → integer nanoseconds without float overflow of Date-sized numbers. */
export function msToNanos(ms: number): bigint {
  const whole = Math.floor(ms);
  return BigInt(whole) * 1_000_000n + BigInt(Math.round((ms - whole) * 1e6));
}

export function toSpan(s: TraceSpan): SpanInit {
  const attrs: Record<string, string> = {};
  for (const [k, v] of Object.entries(s.attrs ?? {})) attrs[k] = String(v);
  return { name: s.name, startUnixNano: msToNanos(s.start), durationNano: msToNanos(Math.max(0, s.durationMs)), attrs, error: s.error ?? '' };
}

export const trace =
  (ctx: RuntimeContext): NonNullable<BerthHandlers['trace']> =>
  async (req, call) => {
    if (!req.podSandboxId) throw errors.invalidArgument('trace.empty_id', 'pod_sandbox_id is required');
    let id = req.podSandboxId;
    const images = new Set<string>();
    try {
      const sb = findSandbox(ctx, call.namespace, req.podSandboxId);
      id = sb.id;
      for (const c of ctx.containers.bySandbox(call.namespace, sb.id)) images.add(c.image);
    } catch (err) {
      // A removed pod may still have spans in memory: fall back to the id as given.
      if (!isBerthError(err, 'NotFound')) throw err;
    }
    const spans: TraceSpan[] = [...ctx.tracer.get(id)];
    for (const ref of images) spans.push(...ctx.tracer.get(pullTraceKey(ref)));
    if (spans.length === 0) throw errors.notFound('trace.not_found', `no trace recorded for pod sandbox ${req.podSandboxId}`);
    spans.sort((a, b) => a.start - b.start);
    return { spans: spans.map(toSpan) };
  };
