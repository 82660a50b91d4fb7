/**
 * The unary bench's floor servers: RuntimeService/Version answered by a process that holds none
 * of berth's code, to show how much of berth's per-call latency is the Node transport itself.
 * Run as a child process: `node floor-server.js <grpc-js|http2> <socket>`.
 *
 * - `grpc-js`: a bare @grpc/grpc-js server (channelz off, as berthd's) with berth's service
 *   definition; every method answers the same VersionResponse. What berthd's CRI server
 *   costs with no berth code in the call.
 * - `http2`: Node's own HTTP/2 server answering the gRPC wire format directly (5-byte length
 *   prefix, :status 200, grpc-status trailer), no grpc-js: the floor of any gRPC server on
 *   Node's http2, without the library's call objects and interceptors. Version only; it is a
 *   measuring stick, not a server for clients (no deadlines, limits, errors or streams).
 *
 * Both listen on a unix socket they own and report "ready" on stdout once listening.
 */
import * as grpc from '@grpc/grpc-js';
import { create, toBinary } from '@bufbuild/protobuf';
import { createServer as createH2Server } from 'node:http2';
import { createServer as createNetServer } from 'node:net';
import { rmSync } from 'node:fs';
import { RuntimeService, VersionResponseSchema } from '../src/api/cri/runtime/v1/api_pb.js';
import { serviceDefinition } from '../src/cri/server/grpc.js';

const answer = { version: '0.1.0', runtimeName: 'floor', runtimeVersion: '0', runtimeApiVersion: 'v1' };

function grpcJs(socket: string): void {
  const server = new grpc.Server({ 'grpc.enable_channelz': 0 });
  const impl: grpc.UntypedServiceImplementation = {};
  for (const m of RuntimeService.methods) {
    impl[m.localName] = ((_call: unknown, callback: grpc.sendUnaryData<unknown>) => {
      void Promise.resolve().then(() => callback(null, answer));
    }) as grpc.handleUnaryCall<unknown, unknown>;
  }
  server.addService(serviceDefinition(RuntimeService), impl);
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  listen(socket, (sock) => injector.injectConnection(sock));
}

function http2(socket: string): void {
  const body = toBinary(VersionResponseSchema, create(VersionResponseSchema, answer));
  const h2 = createH2Server();
  h2.on('stream', (stream) => {
    stream.on('data', () => undefined);
    stream.on('end', () => {
      const out = Buffer.allocUnsafe(5 + body.length);
      out[0] = 0;
      out.writeUInt32BE(body.length, 1);
      out.set(body, 5);
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(out);
    });
  });
  listen(socket, (sock) => h2.emit('connection', sock));
}

function listen(socket: string, onConnection: (sock: import('node:net').Socket) => void): void {
  rmSync(socket, { force: true });
  createNetServer(onConnection).listen(socket, () => process.stdout.write('ready\n'));
}

const [mode, socket] = process.argv.slice(2);
if (!socket || (mode !== 'grpc-js' && mode !== 'http2')) {
  process.stderr.write('usage: floor-server <grpc-js|http2> <socket>\n');
  process.exit(2);
}
if (mode === 'grpc-js') grpcJs(socket);
else http2(socket);
