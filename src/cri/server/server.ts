/**
 * The CRI gRPC server: runtime.v1.RuntimeService and runtime.v1.ImageService on one unix socket.
 * Handlers live one per file (image/pull.ts, version.ts, …); RPCs without a handler answer
 * UNIMPLEMENTED naming the RPC.
 */
import * as grpc from '@grpc/grpc-js';
import { chmodSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { createServer as createNetServer, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { DescMessage, DescService, MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import { ImageService, RuntimeService } from '../../api/cri/runtime/v1/api_pb.js';
import { Berth } from '../../api/berth/v1/berth_pb.js';
import { errors } from '../../errors.js';
import type { Logger } from '../../log.js';
import { serviceDefinition } from './grpc.js';
import { checkEnums } from './request-check.js';
import { acceptConnection } from './h2-authority.js';
import {
  instrumentServerStream,
  instrumentUnary,
  type CallContext,
  type RpcObserver,
  type StreamCallContext,
  type StreamHandler,
  type UnaryHandler,
} from './instrument.js';

type Req<M extends GenServiceMethods[string]> = MessageShape<M['input'] & DescMessage>;
type Res<M extends GenServiceMethods[string]> = MessageInitShape<M['output'] & DescMessage>;

/**
 * The handlers of a service, typed from its descriptor. There is one way to declare a handler,
 * in the file named after its RPC: `export const podSandboxStatus = (ctx: RuntimeContext):
 * NonNullable<RuntimeHandlers['podSandboxStatus']> => async (req, call) => …` (a block body
 * when the handler keeps something across calls), so request, response and stream types come
 * from the service, never written by hand. The handler tables (handlers-*.ts) only list them.
 */
export type Handlers<S extends GenServiceMethods> = {
  [K in keyof S]?: S[K]['methodKind'] extends 'unary'
    ? (req: Req<S[K]>, ctx: CallContext) => Promise<Res<S[K]>>
    : S[K]['methodKind'] extends 'server_streaming'
      ? (req: Req<S[K]>, write: (msg: Res<S[K]>) => boolean, ctx: StreamCallContext) => Promise<void>
      : never;
};

export type RuntimeHandlers = Handlers<typeof RuntimeService extends GenService<infer S> ? S : never>;
export type ImageHandlers = Handlers<typeof ImageService extends GenService<infer S> ? S : never>;
export type BerthHandlers = Handlers<typeof Berth extends GenService<infer S> ? S : never>;

function implementation(service: DescService, handlers: Record<string, unknown>, log: Logger, observer?: RpcObserver): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const m of service.methods) {
    const name = `${service.typeName}/${m.name}`;
    const h = handlers[m.localName];
    if (m.methodKind === 'unary') {
      const fn: UnaryHandler = h
        ? (req, ctx) => {
            checkEnums(m.input, req);
            return (h as UnaryHandler)(req, ctx);
          }
        : async () => {
            throw errors.unimplemented('rpc.unimplemented', `${name} is not implemented by berth yet`);
          };
      impl[m.localName] = instrumentUnary(name, fn, log, observer);
    } else if (m.methodKind === 'server_streaming') {
      const fn: StreamHandler = h
        ? (req, write, ctx) => {
            checkEnums(m.input, req);
            return (h as StreamHandler)(req, write, ctx);
          }
        : async () => {
            throw errors.unimplemented('rpc.unimplemented', `${name} is not implemented by berth yet`);
          };
      impl[m.localName] = instrumentServerStream(name, fn, log, observer);
    }
  }
  return impl;
}

export interface CriServer {
  close(graceMs?: number): Promise<void>;
}

/** Start serving the CRI on a unix socket (mode 0660; parent directory 0711 at most). */
export async function startCriServer(opts: {
  socket: string;
  runtime: RuntimeHandlers;
  image: ImageHandlers;
  berth: BerthHandlers;
  log: Logger;
  observer?: RpcObserver;
}): Promise<CriServer> {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    // berth serves no channelz service: its per-call trackers (closures, counters, timestamps
    // on every message) were work on every CRI call that nothing read.
    'grpc.enable_channelz': 0,
  });
  server.addService(serviceDefinition(RuntimeService), implementation(RuntimeService, opts.runtime as Record<string, unknown>, opts.log, opts.observer));
  server.addService(serviceDefinition(ImageService), implementation(ImageService, opts.image as Record<string, unknown>, opts.log, opts.observer));

  server.addService(serviceDefinition(Berth), implementation(Berth, opts.berth as Record<string, unknown>, opts.log, opts.observer));

  const dir = dirname(opts.socket);
  mkdirSync(dir, { recursive: true, mode: 0o711 });
  // Never widen a directory someone tightened; narrow a world-writable one.
  if ((statSync(dir).mode & 0o022) !== 0) chmodSync(dir, 0o711);
  rmSync(opts.socket, { force: true });
  // berthd owns the listening socket and hands grpc-js each connection: as it is, or through a
  // filter that makes the `:authority` of old grpc-go/grpc-java clients acceptable to Node, when
  // the connection's first request needs it (h2-authority.ts).
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const connections = new Set<Socket>();
  const listener = createNetServer((sock) => {
    connections.add(sock);
    sock.on('close', () => connections.delete(sock));
    acceptConnection(sock, (conn, mode) => {
      if (mode === 'filtered') {
        conn.on('error', (err: Error) => opts.log.debug('cri connection closed', { err: err.message }));
        opts.log.debug('cri connection filtered (its :authority is rewritten)');
      }
      injector.injectConnection(conn);
    });
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(opts.socket, () => {
      listener.off('error', reject);
      resolve();
    });
  });
  listener.on('error', (err) => opts.log.error('cri listener', { err: err.message }));
  chmodSync(opts.socket, 0o660);

  return {
    close: (graceMs = 10_000) =>
      new Promise<void>((resolve) => {
        listener.close();
        const timer = setTimeout(() => {
          server.forceShutdown();
          injector.destroy();
          for (const s of connections) s.destroy();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          injector.destroy();
          resolve();
        });
      }).finally(() => rmSync(opts.socket, { force: true })),
  };
}
