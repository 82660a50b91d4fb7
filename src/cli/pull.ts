/** `berth pull IMAGE`: pull with a live per-layer progress display and a summary. */
import { parseArgs } from 'node:util';
import { Berth } from '../api/berth/v1/berth_pb.js';
import type { PullProgress } from '../api/berth/v1/berth_pb.js';
import { createPromiseClient, unixChannel } from '../cri/server/grpc.js';
import { humanBytes, shortId, UsageError, type Verb } from './common.js';

function render(p: PullProgress, rates: Map<string, { t: number; b: number; rate: number }>): string[] {
  const now = Date.now();
  return p.layers.map((l) => {
    const fetched = Number(l.fetched);
    const size = Number(l.size);
    const prev = rates.get(l.digest);
    let rate = prev?.rate ?? 0;
    if (prev && now - prev.t >= 250) {
      rate = ((fetched - prev.b) * 1000) / (now - prev.t);
      rates.set(l.digest, { t: now, b: fetched, rate });
    } else if (!prev) rates.set(l.digest, { t: now, b: fetched, rate: 0 });
    const pct = size > 0 ? Math.min(100, Math.floor((fetched * 100) / size)) : 100;
    const bar = '#'.repeat(Math.floor(pct / 5)).padEnd(20, '.');
    const rateText = l.status === 'downloading' && rate > 0 ? `${humanBytes(rate)}/s` : '';
    return `${shortId(l.digest)}  ${l.status.padEnd(11)} [${bar}] ${humanBytes(fetched).padStart(8)} / ${humanBytes(size).padEnd(8)} ${rateText}`;
  });
}

export const pull: Verb = {
  summary: 'Pull an image, showing per-layer progress',
  usage: 'berth pull [--creds USER:PASS] [--auth BASE64] [--registry-token TOKEN] [-q] IMAGE',
  async run(args, ctx) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { creds: { type: 'string' }, auth: { type: 'string' }, 'registry-token': { type: 'string' }, quiet: { type: 'boolean', short: 'q' } },
    });
    if (positionals.length !== 1) throw new UsageError('pull takes exactly one IMAGE');
    const image = positionals[0]!;
    let username = '';
    let password = '';
    if (values.creds) {
      const i = values.creds.indexOf(':');
      if (i < 0) throw new UsageError('--creds must be USER:PASSWORD');
      username = values.creds.slice(0, i);
      password = values.creds.slice(i + 1);
    }
    const client = createPromiseClient(Berth, unixChannel(ctx.socket), ctx.namespace ? { 'berth-namespace': ctx.namespace } : {});
    const stream = client.pull({ image: { image }, auth: { username, password, auth: values.auth ?? '', registryToken: values['registry-token'] ?? '' } });
    const rates = new Map<string, { t: number; b: number; rate: number }>();
    const live = ctx.isTTY && !values.quiet;
    let drawn = 0;
    let last: PullProgress | undefined;
    let lastDraw = 0;
    for await (const p of stream) {
      last = p;
      if (live && (p.done || Date.now() - lastDraw > 100)) {
        lastDraw = Date.now();
        const lines = render(p, rates);
        let s = drawn > 0 ? `\x1b[${drawn}A` : '';
        for (const line of lines) s += `\x1b[2K${line}\n`;
        process.stdout.write(s);
        drawn = lines.length;
      }
    }
    if (!last?.done) throw new Error('pull stream ended early');
    const total = last.layers.reduce((a, l) => a + Number(l.size), 0);
    const secs = Number(last.elapsedMs) / 1000;
    const fetched = last.layers.filter((l) => l.status !== 'exists').reduce((a, l) => a + Number(l.size), 0);
    if (!values.quiet) {
      ctx.out(
        `pulled ${image}: ${last.layers.length} layers, ${humanBytes(total)} (${humanBytes(fetched)} fetched) in ${secs.toFixed(2)}s${secs > 0 ? `, ${humanBytes(fetched / secs)}/s` : ''}`,
      );
    }
    ctx.out(`Image is up to date for ${last.imageId}`);
    return 0;
  },
};
