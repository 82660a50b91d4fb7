/**
 * People type names and id prefixes, the CRI wants full ids. Resolution order: exact id,
 * unique id prefix, then metadata name (for containers the newest match wins, since `berth
 * run` of the same name after a removal is common). An ambiguous prefix is an error naming
 * the candidates.
 */
import type { Container, PodSandbox } from '../api/cri/runtime/v1/api_pb.js';
import type { CliContext } from './common.js';

export class AmbiguousRefError extends Error {}

interface Named {
  id: string;
  createdAt: bigint;
  metadata?: { name: string };
}

export function pickByRef<T extends Named>(items: readonly T[], ref: string, what: string): T | undefined {
  const exact = items.find((i) => i.id === ref);
  if (exact) return exact;
  const byPrefix = items.filter((i) => i.id.startsWith(ref));
  if (byPrefix.length === 1) return byPrefix[0]!;
  if (byPrefix.length > 1)
    throw new AmbiguousRefError(`${what} id prefix ${JSON.stringify(ref)} is ambiguous: ${byPrefix.map((i) => i.id.slice(0, 13)).join(', ')}`);
  const byName = items.filter((i) => i.metadata?.name === ref).sort((a, b) => (b.createdAt > a.createdAt ? 1 : b.createdAt < a.createdAt ? -1 : 0));
  return byName[0];
}

/** The container's full id; an unknown ref is passed through so berthd answers NotFound itself. */
export async function resolveContainerId(ctx: CliContext, ref: string): Promise<string> {
  const { containers } = await ctx.cri().runtime.listContainers({});
  return pickByRef<Container>(containers, ref, 'container')?.id ?? ref;
}

/** The pod's full id; an unknown ref is passed through so berthd answers NotFound itself. */
export async function resolvePodId(ctx: CliContext, ref: string): Promise<string> {
  const { items } = await ctx.cri().runtime.listPodSandbox({});
  return pickByRef<PodSandbox>(items, ref, 'pod')?.id ?? ref;
}
