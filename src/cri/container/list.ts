/** RuntimeService/ListContainers: filters by id (prefix), state, pod sandbox id (prefix) and labels; StreamContainers. */
import { create, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { ContainerSchema } from '../../api/cri/runtime/v1/api_pb.js';
import type { ContainerRecord } from '../../core/metadata/records.js';
import { criState, imageViews, nanos } from './convert.js';
import { EncodedResponse } from '../server/grpc.js';
import { AnswerCache } from '../server/answer-cache.js';
import type { RuntimeContext } from '../server/runtime-context.js';
import type { RuntimeHandlers } from '../server/server.js';
import { writePages } from '../server/stream-pages.js';

type Filter = NonNullable<Parameters<NonNullable<RuntimeHandlers['listContainers']>>[0]['filter']>;

/**
 * What one listing keeps of a record between calls: the record as stored (JSON text), parsed,
 * and its runtime.v1.Container encoded for the image view it had. Parsing 200 records and
 * encoding 200 messages was most of a ListContainers; both only change when the record (or
 * the image's names) does.
 */
interface Entry {
  raw: string;
  rec: ContainerRecord;
  image?: string;
  imageRef?: string;
  bytes?: Uint8Array;
}

// Process-wide: keyed by the RuntimeContext, so two contexts share nothing (and a dropped one is collected).
const entries = new WeakMap<RuntimeContext, Map<string, Map<string, Entry>>>();

/** The namespace's records, parsed once per stored text; the cache keeps only records still stored. */
function records(ctx: RuntimeContext, ns: string): Entry[] {
  let byNs = entries.get(ctx);
  if (!byNs) entries.set(ctx, (byNs = new Map()));
  const prev = byNs.get(ns);
  const next = new Map<string, Entry>();
  const out: Entry[] = [];
  for (const row of ctx.containers.rows(ns)) {
    let e = prev?.get(row.id);
    if (!e || e.raw !== row.record) e = { raw: row.record, rec: JSON.parse(row.record) as ContainerRecord };
    next.set(row.id, e);
    out.push(e);
  }
  if (next.size) byNs.set(ns, next);
  else byNs.delete(ns);
  return out;
}

function matching(ctx: RuntimeContext, ns: string, f: Filter | undefined): Entry[] {
  let list = records(ctx, ns);
  if (f?.podSandboxId) list = list.filter((e) => e.rec.sandboxId.startsWith(f.podSandboxId));
  if (f?.id) list = list.filter((e) => e.rec.id.startsWith(f.id));
  if (f?.state) list = list.filter((e) => criState[e.rec.state] === f.state!.state);
  const selector = Object.entries(f?.labelSelector ?? {});
  if (selector.length) list = list.filter((e) => selector.every(([k, v]) => e.rec.labels[k] === v));
  return list;
}

function toContainer(c: ContainerRecord, image: string, imageRef: string): MessageInitShape<typeof ContainerSchema> {
  return {
    id: c.id,
    podSandboxId: c.sandboxId,
    metadata: { name: c.meta.name, attempt: c.meta.attempt },
    image: { image, userSpecifiedImage: c.image },
    imageRef,
    imageId: c.imageId,
    state: criState[c.state],
    createdAt: nanos(c.createdAt),
    labels: c.labels,
    annotations: c.annotations,
  };
}

/** The matching containers as messages (StreamContainers pages them). */
async function containersOf(ctx: RuntimeContext, ns: string, f: Filter | undefined): Promise<Array<MessageInitShape<typeof ContainerSchema>>> {
  const view = imageViews(ctx, ns);
  const out: Array<MessageInitShape<typeof ContainerSchema>> = [];
  for (const e of matching(ctx, ns, f)) {
    const { image, imageRef } = await view(e.rec);
    out.push(toContainer(e.rec, image, imageRef));
  }
  return out;
}

/**
 * Whole answers by namespace + filter, valid while the container records (the store's
 * generation) and the images (their names) are unchanged: the kubelet asks the same list every
 * second. Bounded (AnswerCache), as filters come from clients.
 */
// Process-wide: keyed by the RuntimeContext, so two contexts share nothing (and a dropped one is collected).
const answers = new WeakMap<RuntimeContext, AnswerCache>();

/** What the answer cache of `ctx` holds (entries, and the characters of their keys): for tests. */
export function containerAnswersHeld(ctx: RuntimeContext): { entries: number; keyChars: number } {
  return answers.get(ctx)?.held() ?? { entries: 0, keyChars: 0 };
}

export const listContainers =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['listContainers']> =>
  async (req, call) => {
    const ns = call.namespace;
    const f = req.filter;
    const imagesKey = ctx.images.answersKey?.();
    const gen = ctx.containers.generation;
    let cache = answers.get(ctx);
    if (!cache) answers.set(ctx, (cache = new AnswerCache()));
    const which = f
      ? JSON.stringify([
          ns,
          f.id,
          f.state?.state ?? null,
          f.podSandboxId,
          Object.entries(f.labelSelector ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        ])
      : JSON.stringify([ns]);
    const validity = `${gen}\u0000${imagesKey ?? ''}`;
    const hit = imagesKey !== undefined ? cache.get(which, validity) : undefined;
    if (hit) return hit as unknown as Awaited<ReturnType<NonNullable<RuntimeHandlers['listContainers']>>>;
    const view = imageViews(ctx, ns);
    // ListContainersResponse is `repeated Container containers = 1`: the encoded answer is
    // each container's bytes as field 1, so cached encodings are joined, not re-encoded.
    const w = new BinaryWriter();
    for (const e of matching(ctx, ns, f)) {
      const { image, imageRef } = await view(e.rec);
      if (!e.bytes || e.image !== image || e.imageRef !== imageRef) {
        e.bytes = toBinary(ContainerSchema, create(ContainerSchema, toContainer(e.rec, image, imageRef)));
        e.image = image;
        e.imageRef = imageRef;
      }
      w.tag(1, WireType.LengthDelimited).bytes(e.bytes);
    }
    const res = new EncodedResponse(w.finish());
    // Kept only if nothing changed while the images were looked up.
    if (imagesKey !== undefined && gen === ctx.containers.generation && imagesKey === ctx.images.answersKey?.()) cache.set(which, validity, res);
    return res as unknown as Awaited<ReturnType<NonNullable<RuntimeHandlers['listContainers']>>>;
  };

/** RuntimeService/StreamContainers: ListContainers' items and filter, in pages. */
export const streamContainers =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['streamContainers']> =>
  async (req, write, call) => {
    const containers = await containersOf(ctx, call.namespace, req.filter);
    await writePages(containers, (page) => ({ containers: page }), write, call);
  };
