/**
 * Publishing task events the way containerd 1.6+ shims do:
 *  - TTRPC_ADDRESS set: ttrpc call containerd.services.events.ttrpc.v1.Events/Forward with an
 *    Envelope {timestamp, namespace, topic, event: Any};
 *  - otherwise: exec `<publish-binary> --address <addr> publish --topic <t> --namespace <ns>`
 *    with the event Any (protobuf) on stdin.
 * Events are sent strictly in order through one queue; a failed send is retried a few times
 * and then dropped with a log line (containerd does the same).
 *
 * Any type URLs are the bare proto full names ("containerd.events.TaskExit"), as containerd's
 * typeurl produces for proto messages.
 */
import { encode, packAny, timestamp, AnyS, type Any, type Schema } from '../ttrpc/pb.js';
import type { TtrpcClient } from '../ttrpc/client.js';
import { ForwardRequestS } from './task-api.js';
import type { Logger } from '../log.js';
import { runTracked } from './spawn.js';

export const Topics = {
  create: '/tasks/create',
  start: '/tasks/start',
  exit: '/tasks/exit',
  oom: '/tasks/oom',
  execAdded: '/tasks/exec-added',
  execStarted: '/tasks/exec-started',
  paused: '/tasks/paused',
  resumed: '/tasks/resumed',
  delete: '/tasks/delete',
  checkpointed: '/tasks/checkpointed',
} as const;
export type Topic = (typeof Topics)[keyof typeof Topics];

export { packAny };

export interface PublishedEvent {
  topic: Topic;
  event: Any;
  timestamp: Date;
}

export interface EventSink {
  send(e: PublishedEvent): Promise<void>;
  close(): void;
}

export class TtrpcEventSink implements EventSink {
  private client: TtrpcClient | undefined;

  constructor(
    private readonly address: string,
    private readonly namespace: string,
  ) {}

  async send(e: PublishedEvent): Promise<void> {
    if (!this.client || !this.client.isOpen) {
      const { TtrpcClient } = await import('../ttrpc/client.js');
      this.client = await TtrpcClient.connect(this.address.replace(/^unix:\/\//, ''));
    }
    const body = encode(ForwardRequestS, {
      envelope: { timestamp: timestamp(e.timestamp), namespace: this.namespace, topic: e.topic, event: e.event },
    });
    await this.client.call('containerd.services.events.ttrpc.v1.Events', 'Forward', body, { timeoutMs: 5000 });
  }

  close(): void {
    this.client?.close();
  }
}

export class ExecEventSink implements EventSink {
  constructor(
    private readonly binary: string,
    private readonly address: string,
    private readonly namespace: string,
  ) {}

  async send(e: PublishedEvent): Promise<void> {
    const r = await runTracked(this.binary, ['--address', this.address, 'publish', '--topic', e.topic, '--namespace', this.namespace], {
      input: encode(AnyS, e.event),
      timeoutMs: 5000,
    });
    if (r.code !== 0) throw new Error(`${this.binary} publish ${e.topic}: exit ${r.code}: ${r.stderr.trim()}`);
  }

  close(): void {}
}

/** Ordered, retrying publisher over any sink; `listeners` see every event locally (tests, berthd in-process). */
export class Publisher {
  private queue: Promise<void> = Promise.resolve();
  private readonly listeners = new Set<(e: PublishedEvent) => void>();

  constructor(
    private readonly sink: EventSink | undefined,
    private readonly log: Logger,
  ) {}

  on(fn: (e: PublishedEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private closed = false;

  /**
   * Queues an event; resolves true once the sink took it (false: dropped). Exit events are
   * never dropped while the shim runs: they are retried (backing off to 2 s) until delivered,
   * since a lost exit would leave a container "running" forever; others get three tries.
   */
  publish(topic: Topic, schema: Schema, msg: object): Promise<boolean> {
    const e: PublishedEvent = { topic, event: packAny(schema, msg), timestamp: new Date() };
    for (const l of this.listeners) l(e);
    const sink = this.sink;
    if (!sink) return Promise.resolve(false);
    const persistent = topic === '/tasks/exit';
    const sent = this.queue.then(async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          await sink.send(e);
          return true;
        } catch (err) {
          if (this.closed || (!persistent && attempt >= 3)) {
            this.log.warn('dropping event after failed publish', { topic, err });
            return false;
          }
          if (attempt === 3) this.log.warn('event not delivered yet; retrying', { topic, err });
          await new Promise((r) => setTimeout(r, Math.min(100 * attempt, 2000)));
        }
      }
    });
    this.queue = sent.then(() => undefined);
    return sent;
  }

  /** Resolves when every queued event has been sent (or dropped). */
  flush(): Promise<void> {
    return this.queue;
  }

  close(): void {
    this.closed = true;
    this.sink?.close();
  }
}
