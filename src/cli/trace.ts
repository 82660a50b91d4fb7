/**
 * `berth trace POD [-o json]`: the pod's startup (RunPodSandbox, CreateContainer,
 * StartContainer steps) from berth.v1.Berth/Trace, drawn as a waterfall.
 */
import { Berth, type Span } from '../api/berth/v1/berth_pb.js';
import { createPromiseClient, unixChannel } from '../cri/server/grpc.js';
import { UsageError, type Verb } from './common.js';
import { resolvePodId } from './resolve.js';
import { emitDocument, wantsDocument } from './output.js';
import { verbArgs } from './verb-args.js';
import { renderWaterfall, type TraceSpanView } from './waterfall.js';

/** A wire span (int64 nanos as bigint, attrs as a map) in the renderer's terms. */
export function toView(s: Pick<Span, 'name' | 'startUnixNano' | 'durationNano' | 'attrs' | 'error'>): TraceSpanView {
  return { name: s.name, startNs: s.startUnixNano, durationNs: s.durationNano, error: s.error || undefined, attrs: { ...s.attrs } };
}

export const trace: Verb = {
  summary: "Show a pod's startup as a waterfall",
  usage: [
    'berth trace [-w|--width N] [-o json] POD',
    '',
    'One line per recorded step (RunPodSandbox, CreateContainer, StartContainer and their parts):',
    'start offset, duration and a bar on a common time axis; failed steps are marked ✗.',
  ].join('\n'),
  rawArgs: true,
  async run(args, ctx) {
    const { flags, positionals } = verbArgs(args, { width: { type: 'string', short: 'w' } }, ctx);
    if (positionals.length !== 1) throw new UsageError('trace takes exactly one POD');
    const podSandboxId = await resolvePodId(ctx, positionals[0]!);
    const client = createPromiseClient(Berth, unixChannel(ctx.socket), ctx.namespace ? { 'berth-namespace': ctx.namespace } : {});
    const res = await client.trace({ podSandboxId });
    const spans = res.spans.map(toView);
    if (wantsDocument(ctx)) {
      emitDocument(ctx, {
        podSandboxId,
        spans: spans.map((s) => ({ name: s.name, startUnixNano: s.startNs.toString(), durationNano: s.durationNs.toString(), error: s.error, attrs: s.attrs })),
      });
      return 0;
    }
    const width = flags.width ? Number(flags.width) : (process.stdout.columns ?? 100);
    if (!Number.isInteger(width) || width < 20) throw new UsageError(`--width ${JSON.stringify(flags.width)}: expected an integer ≥ 20`);
    ctx.out(renderWaterfall(spans, width).join('\n'));
    return 0;
  },
};
