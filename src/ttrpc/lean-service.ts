/**
 * Serving a ttrpc service on the lean codec (pb.ts) instead of protobuf-es descriptors: each
 * method names its request and response tables. Used by berth-shim, which must not load
 * protobuf-es (see pb.ts); berthd keeps the typed protobuf-es layer in service.ts.
 */
import { errors } from '../errors.js';
import { decode, encode, type Msg, type Schema } from './pb.js';
import type { CallContext, MethodHandler, TtrpcServer } from './server.js';

/** One unary method: request table, response table, handler. */
export interface LeanMethod {
  readonly input: Schema;
  readonly output: Schema;
  readonly handle: (req: Msg, ctx: CallContext) => Promise<object> | object;
}

/**
 * Build a method. `Req` is the decoded request's shape; the caller vouches that it matches
 * `input` (test/unit/shim-task-api.test.ts checks the shim's tables against protobuf-es).
 */
export function method<Req>(input: Schema, output: Schema, handle: (req: Req, ctx: CallContext) => Promise<object> | object): LeanMethod {
  return { input, output, handle: handle as unknown as LeanMethod['handle'] };
}

/** Register `methods` (keyed by the proto method name, e.g. "Create") under `service`. */
export function registerLean(server: TtrpcServer, service: string, methods: Readonly<Record<string, LeanMethod>>): void {
  const table: Record<string, MethodHandler> = {};
  for (const [name, m] of Object.entries(methods)) {
    table[name] = async (ctx, payload) => {
      let req: Msg;
      try {
        req = decode(m.input, payload);
      } catch (err) {
        // Same code and wording family as Go's ttrpc for an undecodable payload.
        throw errors.internal('ttrpc.bad_payload', `ttrpc: error unmarshalling payload: ${err instanceof Error ? err.message : String(err)}`, err);
      }
      return encode(m.output, await m.handle(req, ctx));
    };
  }
  server.register(service, table);
}
