/** `berth events [-o json]`: the GetContainerEvents stream, one line per event, until interrupted. */
import { ContainerEventType, type ContainerEventResponse } from '../api/cri/runtime/v1/api_pb.js';
import { UsageError, type Verb } from './common.js';
import { containerStateName, podStateName, truncId } from './format.js';
import { verbArgs } from './verb-args.js';

const TYPES: Record<ContainerEventType, string> = {
  [ContainerEventType.CONTAINER_CREATED_EVENT]: 'created',
  [ContainerEventType.CONTAINER_STARTED_EVENT]: 'started',
  [ContainerEventType.CONTAINER_STOPPED_EVENT]: 'stopped',
  [ContainerEventType.CONTAINER_DELETED_EVENT]: 'deleted',
};

/** One human line: time, event, container (name and id), pod (name, id, state). */
export function eventLine(e: ContainerEventResponse): string {
  const when = new Date(Number(e.createdAt / 1_000_000n)).toISOString();
  const c = e.containersStatuses.find((s) => s.id === e.containerId);
  const pod = e.podSandboxStatus;
  const parts = [when, (TYPES[e.containerEventType] ?? `event(${e.containerEventType})`).padEnd(7), `container=${truncId(e.containerId)}`];
  if (c?.metadata?.name) parts.push(`name=${c.metadata.name}`);
  if (c) parts.push(`state=${containerStateName(c.state)}`);
  if (c && e.containerEventType === ContainerEventType.CONTAINER_STOPPED_EVENT) parts.push(`exit=${c.exitCode}${c.reason ? ` reason=${c.reason}` : ''}`);
  if (pod)
    parts.push(
      `pod=${truncId(pod.id)}`,
      ...(pod.metadata?.name ? [`pod-name=${pod.metadata.namespace}/${pod.metadata.name}`] : []),
      `pod-state=${podStateName(pod.state)}`,
    );
  return parts.join(' ');
}

/** JSON lines: compact, bigints as numbers. */
export function eventJson(e: ContainerEventResponse): string {
  return JSON.stringify(e, (k, v: unknown) =>
    k === '$typeName' ? undefined : typeof v === 'bigint' ? Number(v) : v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v,
  );
}

export const events: Verb = {
  summary: 'Stream container events',
  usage: 'berth events [-o json]\n\nOne line per event (JSON lines with -o json) until interrupted.',
  rawArgs: true,
  async run(args, ctx) {
    const { positionals } = verbArgs(args, {}, ctx);
    if (positionals.length > 0) throw new UsageError('events takes no arguments');
    const stream = ctx.cri().runtime.getContainerEvents({});
    const stop = (): void => stream.cancel();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      for await (const e of stream) ctx.out(ctx.output === 'json' ? eventJson(e) : eventLine(e));
    } catch (err) {
      // Cancelled by our own signal handler: a normal end.
      if ((err as { code?: number }).code !== 1) throw err;
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
    return 0;
  },
};
