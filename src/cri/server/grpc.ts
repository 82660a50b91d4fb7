/**
 * gRPC plumbing for protobuf-es v2 service descriptors on @grpc/grpc-js: service definitions
 * for the server side, and typed promise clients. Transport only; no CRI logic here.
 */
import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary, type DescMessage, type DescService, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';

/**
 * A response a handler has already encoded (its protobuf bytes): the serializer sends it as it
 * is. For answers assembled from per-record parts cached in encoded form (ListContainers).
 */
export class EncodedResponse {
  constructor(readonly bytes: Uint8Array) {}
}

function serializeResponse(schema: DescMessage, msg: unknown): Buffer {
  if (msg instanceof EncodedResponse) return Buffer.from(msg.bytes.buffer, msg.bytes.byteOffset, msg.bytes.byteLength);
  return Buffer.from(toBinary(schema, create(schema, msg as never)));
}

/** grpc-js service definition whose keys are the methods' localName (lowerCamel). */
export function serviceDefinition(service: DescService): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of service.methods) {
    def[m.localName] = {
      path: `/${service.typeName}/${m.name}`,
      originalName: m.name,
      requestStream: m.methodKind === 'client_streaming' || m.methodKind === 'bidi_streaming',
      responseStream: m.methodKind === 'server_streaming' || m.methodKind === 'bidi_streaming',
      requestSerialize: (msg: never) => Buffer.from(toBinary(m.input, create(m.input, msg))),
      requestDeserialize: (buf: Buffer) => fromBinary(m.input, buf),
      responseSerialize: (msg: unknown) => serializeResponse(m.output, msg),
      responseDeserialize: (buf: Buffer) => fromBinary(m.output, buf),
    } as grpc.MethodDefinition<unknown, unknown>;
  }
  return def as grpc.ServiceDefinition;
}

export interface CallOptions {
  /** Request metadata (e.g. berth-namespace). */
  metadata?: Record<string, string>;
  /** Deadline in milliseconds from now. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

type Method = Pick<GenServiceMethods[string], 'input' | 'output' | 'methodKind'>;
type In<M extends Method> = MessageInitShape<M['input'] & DescMessage>;
type Out<M extends Method> = MessageShape<M['output'] & DescMessage>;

export type PromiseClient<S extends GenServiceMethods> = {
  [K in keyof S]: S[K]['methodKind'] extends 'unary'
    ? (req?: In<S[K]>, opts?: CallOptions) => Promise<Out<S[K]>>
    : S[K]['methodKind'] extends 'server_streaming'
      ? (req?: In<S[K]>, opts?: CallOptions) => AsyncIterable<Out<S[K]>> & { cancel(): void; opened: Promise<void> }
      : never;
};

/** A typed client for a protobuf-es service over an existing grpc-js channel. */
export function createPromiseClient<S extends GenServiceMethods>(
  service: GenService<S>,
  channel: grpc.Client,
  defaults: Record<string, string> = {},
): PromiseClient<S> {
  const client: Record<string, unknown> = {};
  const desc = service as unknown as DescService;
  for (const m of desc.methods) {
    const path = `/${desc.typeName}/${m.name}`;
    const ser = (msg: unknown) => Buffer.from(toBinary(m.input, create(m.input, msg as never)));
    const de = (buf: Buffer) => fromBinary(m.output, buf);
    const md = (o?: CallOptions) => {
      const m = new grpc.Metadata();
      for (const [k, v] of Object.entries({ ...defaults, ...o?.metadata })) m.set(k, v);
      return m;
    };
    const callOpts = (o?: CallOptions): grpc.CallOptions => (o?.timeoutMs ? { deadline: Date.now() + o.timeoutMs } : {});
    if (m.methodKind === 'unary') {
      client[m.localName] = (req: unknown = {}, o?: CallOptions) =>
        new Promise((resolve, reject) => {
          const call = channel.makeUnaryRequest(path, ser, de, req, md(o), callOpts(o), (err, res) => (err ? reject(err) : resolve(res)));
          o?.signal?.addEventListener('abort', () => call.cancel(), { once: true });
        });
    } else if (m.methodKind === 'server_streaming') {
      client[m.localName] = (req: unknown = {}, o?: CallOptions) => {
        const stream = channel.makeServerStreamRequest(path, ser, de, req, md(o), callOpts(o));
        o?.signal?.addEventListener('abort', () => stream.cancel(), { once: true });
        // Resolves when the server sent the response headers (the stream is established);
        // rejects if the call ends first.
        const opened = new Promise<void>((resolve, reject) => {
          stream.once('metadata', () => resolve());
          stream.once('status', (st: grpc.StatusObject) => reject(Object.assign(new Error(st.details), st)));
        });
        opened.catch(() => undefined);
        const iterable = {
          [Symbol.asyncIterator]: () => stream[Symbol.asyncIterator](),
          cancel: () => stream.cancel(),
          opened,
        };
        return iterable;
      };
    }
  }
  return client as PromiseClient<S>;
}

/** A grpc-js channel to a unix socket path. */
export function unixChannel(socketPath: string): grpc.Client {
  return new grpc.Client(`unix://${socketPath}`, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
  });
}
