/** `berth inspect CONTAINER...` and `berth inspectp POD...`: status plus verbose info, as JSON. */
import { UsageError, type CliContext, type Verb } from './common.js';
import { resolveContainerId, resolvePodId } from './resolve.js';
import { emitDocument } from './output.js';
import { verbArgs } from './verb-args.js';

/** Verbose info values are JSON documents in strings; show them as JSON, or as text if not. */
export function decodeInfo(info: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(info)) {
    try {
      out[k] = JSON.parse(v) as unknown;
    } catch {
      out[k] = v;
    }
  }
  return out;
}

async function eachRef(args: string[], ctx: CliContext, what: string, show: (ref: string) => Promise<unknown>): Promise<number> {
  const { positionals } = verbArgs(args, {}, ctx);
  if (positionals.length === 0) throw new UsageError(`needs at least one ${what}`);
  const docs: unknown[] = [];
  for (const ref of positionals) docs.push(await show(ref));
  // One document per argument, as crictl prints them.
  for (const d of docs) emitDocument(ctx, d);
  return 0;
}

export const inspect: Verb = {
  summary: 'Show containers in detail (JSON)',
  usage: 'berth inspect CONTAINER...\n\nCONTAINER is an id, a unique id prefix or a name. Prints {status, info} per container.',
  rawArgs: true,
  run: (args, ctx) =>
    eachRef(args, ctx, 'CONTAINER', async (ref) => {
      const res = await ctx.cri().runtime.containerStatus({ containerId: await resolveContainerId(ctx, ref), verbose: true });
      return { status: res.status, info: decodeInfo(res.info) };
    }),
};

export const inspectp: Verb = {
  summary: 'Show pod sandboxes in detail (JSON)',
  usage: 'berth inspectp POD...\n\nPOD is an id, a unique id prefix or a name. Prints {status, info, containers} per pod.',
  rawArgs: true,
  run: (args, ctx) =>
    eachRef(args, ctx, 'POD', async (ref) => {
      const res = await ctx.cri().runtime.podSandboxStatus({ podSandboxId: await resolvePodId(ctx, ref), verbose: true });
      return { status: res.status, info: decodeInfo(res.info), containers: res.containersStatuses };
    }),
};
