/**
 * Typed layer over protobuf-es v2 service descriptors.
 *
 * On the wire a method is addressed by the service's proto full name ("containerd.task.v2.Task")
 * and the method's proto name ("Create"); in TypeScript by its lowerCamel local name ("create").
 */

import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import { BerthError, errors } from '../errors.js';
import type { CallOptions, TtrpcClient } from './client.js';
import type { CallContext, MethodHandler, TtrpcServer } from './server.js';

type Input<M> = M extends { input: infer I extends DescMessage } ? I : never;
type Output<M> = M extends { output: infer O extends DescMessage } ? O : never;

/** What a service implementation provides: one async method per RPC, by local name. */
export type ServiceImpl<S extends GenServiceMethods> = {
  [K in keyof S]: (req: MessageShape<Input<S[K]>>, ctx: CallContext) => Promise<MessageInitShape<Output<S[K]>>> | MessageInitShape<Output<S[K]>>;
};

/** A typed client: one method per RPC taking a request (init object OK), resolving the decoded response. */
export type ServiceClient<S extends GenServiceMethods> = {
  [K in keyof S]: (req: MessageInitShape<Input<S[K]>>, opts?: CallOptions) => Promise<MessageShape<Output<S[K]>>>;
};

/**
 * Registers `impl` for every unary method of `desc`. Methods missing from `impl` are left
 * unregistered, so callers get Unimplemented. Streaming methods are not supported.
 */
export function registerService<S extends GenServiceMethods>(server: TtrpcServer, desc: GenService<S>, impl: Partial<ServiceImpl<S>>): void {
  const table: Record<string, MethodHandler> = {};
  for (const m of Object.values(desc.method)) {
    const fn = (impl as Record<string, ((req: unknown, ctx: CallContext) => unknown) | undefined>)[m.localName];
    if (!fn) continue;
    if (m.methodKind !== 'unary') {
      throw errors.unimplemented('ttrpc.streaming', `ttrpc: ${desc.typeName}/${m.name} is ${m.methodKind}; only unary methods are supported`);
    }
    const input = m.input;
    const output = m.output;
    table[m.name] = async (ctx, payload) => {
      let req;
      try {
        req = fromBinary(input, payload);
      } catch (err) {
        // Same code and wording family as Go's ttrpc for an undecodable payload.
        throw errors.internal('ttrpc.bad_payload', `ttrpc: error unmarshalling payload: ${err instanceof Error ? err.message : String(err)}`, err);
      }
      const res = await fn.call(impl, req, ctx);
      return toBinary(output, create(output, res as MessageInitShape<DescMessage>));
    };
  }
  server.register(desc.typeName, table);
}

/** A typed client for `desc` over an existing ttrpc connection. */
export function createClient<S extends GenServiceMethods>(desc: GenService<S>, client: TtrpcClient): ServiceClient<S> {
  const out: Record<string, (req: unknown, opts?: CallOptions) => Promise<unknown>> = {};
  for (const m of Object.values(desc.method)) {
    const input = m.input;
    const output = m.output;
    out[m.localName] = async (req, opts) => {
      if (m.methodKind !== 'unary') {
        throw errors.unimplemented('ttrpc.streaming', `ttrpc: ${desc.typeName}/${m.name} is ${m.methodKind}; only unary methods are supported`);
      }
      const body = toBinary(input, create(input, req as MessageInitShape<DescMessage>));
      const res = await client.call(desc.typeName, m.name, body, opts);
      try {
        return fromBinary(output, res);
      } catch (err) {
        throw new BerthError('Internal', 'ttrpc.bad_payload', `ttrpc: ${desc.typeName}/${m.name}: undecodable response: ${String(err)}`, { cause: err });
      }
    };
  }
  return out as ServiceClient<S>;
}
