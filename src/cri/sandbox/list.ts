/** RuntimeService/ListPodSandbox with every filter: id (full or unique prefix), state, labels; StreamPodSandboxes. */
import { create, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { PodSandboxSchema, type PodSandboxFilter } from '../../api/cri/runtime/v1/api_pb.js';
import type { SandboxRecord } from '../../core/metadata/records.js';
import type { RuntimeContext } from '../server/runtime-context.js';
import type { RuntimeHandlers } from '../server/server.js';
import { isCreating } from './common.js';
import { criMetadata, criState } from './status.js';
import { writePages } from '../server/stream-pages.js';
import { EncodedResponse } from '../server/grpc.js';
import { AnswerCache } from '../server/answer-cache.js';

/** Records matching a CRI filter (creating ones never match). */
export function filterSandboxes(ctx: RuntimeContext, ns: string, f: PodSandboxFilter | undefined): SandboxRecord[] {
  let id = f?.id ?? '';
  if (id) {
    // A unique prefix stands for its full id (containerd's truncindex); otherwise exact match.
    const ids = ctx.sandboxes.idsWithPrefix(ns, id);
    if (ids.length === 1) id = ids[0]!;
  }
  return ctx.sandboxes
    .list(ns)
    .filter((r) => !isCreating(r))
    .filter((r) => !id || r.id === id)
    .filter((r) => !f?.state || criState(r) === f.state.state)
    .filter((r) => Object.entries(f?.labelSelector ?? {}).every(([k, v]) => r.labels[k] === v))
    .sort((a, b) => (BigInt(a.createdAt) < BigInt(b.createdAt) ? -1 : 1));
}

function toPodSandbox(r: SandboxRecord): MessageInitShape<typeof PodSandboxSchema> {
  return {
    id: r.id,
    metadata: criMetadata(r),
    state: criState(r),
    createdAt: BigInt(r.createdAt),
    labels: r.labels,
    annotations: r.annotations,
    runtimeHandler: r.runtimeHandler,
  };
}

/**
 * Whole answers by namespace + filter, valid while the sandbox records (the store's
 * generation) are unchanged: the kubelet relists every second, and parsing and encoding 100
 * records each time was most of the call. Everything an item says comes from its record.
 * Bounded (AnswerCache), as filters come from clients.
 */
// Process-wide: keyed by the RuntimeContext, so two contexts share nothing (and a dropped one is collected).
const answers = new WeakMap<RuntimeContext, AnswerCache>();

/** What the answer cache of `ctx` holds (entries, and the characters of their keys): for tests. */
export function sandboxAnswersHeld(ctx: RuntimeContext): { entries: number; keyChars: number } {
  return answers.get(ctx)?.held() ?? { entries: 0, keyChars: 0 };
}

type ListResult = Awaited<ReturnType<NonNullable<RuntimeHandlers['listPodSandbox']>>>;

export const listPodSandbox =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['listPodSandbox']> =>
  async (req, call) => {
    const ns = call.namespace;
    const f = req.filter;
    const gen = String(ctx.sandboxes.generation);
    let cache = answers.get(ctx);
    if (!cache) answers.set(ctx, (cache = new AnswerCache()));
    const which = f
      ? JSON.stringify([ns, f.id, f.state?.state ?? null, Object.entries(f.labelSelector ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))])
      : JSON.stringify([ns]);
    const hit = cache.get(which, gen);
    if (hit) return hit as unknown as ListResult;
    // ListPodSandboxResponse is `repeated PodSandbox items = 1`.
    const w = new BinaryWriter();
    for (const r of filterSandboxes(ctx, ns, f))
      w.tag(1, WireType.LengthDelimited).bytes(toBinary(PodSandboxSchema, create(PodSandboxSchema, toPodSandbox(r))));
    const res = new EncodedResponse(w.finish());
    cache.set(which, gen, res);
    return res as unknown as ListResult;
  };

/** RuntimeService/StreamPodSandboxes: ListPodSandbox's items and filter, in pages. */
export const streamPodSandboxes = (ctx: RuntimeContext): NonNullable<RuntimeHandlers['streamPodSandboxes']> => {
  return async (req, write, call) => {
    const items = filterSandboxes(ctx, call.namespace, req.filter).map(toPodSandbox);
    await writePages(items, (podSandboxes) => ({ podSandboxes }), write, call);
  };
};
