/**
 * gRPC clients of every generation reach berthd: old grpc-go (kubelet/crictl 1.26–1.28),
 * grpc-java and Rust clients send the unix socket path, or nothing, as HTTP/2 `:authority`.
 * Requests are made with a raw node:http2 client (gRPC framing by hand) so the test controls
 * the exact pseudo-headers; nghttp2's encoder indexes headers, so later requests on one
 * connection reference the dynamic table as grpc-go's encoder does.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { connect } from 'node:net';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { VersionRequestSchema, VersionResponseSchema, ListPodSandboxRequestSchema, ListPodSandboxResponseSchema } from '../../src/api/cri/runtime/v1/api_pb.js';
import { startBerthd, type TestBerthd } from '../helpers/berthd.js';
import { isRoot } from '../helpers/netns.js';

let berthd: TestBerthd;
const skip = !isRoot() ? 'needs root' : false;

before(async () => {
  if (!skip) berthd = await startBerthd();
});
after(async () => {
  await berthd?.cleanup();
});

interface RawAnswer {
  status: number | undefined;
  grpcStatus: string | undefined;
  grpcMessage: string | undefined;
  body: Buffer;
  rstCode: number;
}

function grpcFrame(msg: Uint8Array): Buffer {
  const b = Buffer.alloc(5 + msg.length);
  b.writeUInt32BE(msg.length, 1);
  Buffer.from(msg).copy(b, 5);
  return b;
}

function unframe(body: Buffer): Buffer {
  assert.ok(body.length >= 5, `gRPC body of ${body.length} bytes`);
  const n = body.readUInt32BE(1);
  return body.subarray(5, 5 + n);
}

function rawCall(session: http2.ClientHttp2Session, path: string, authority: string, msg: Uint8Array, extra: Record<string, string> = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ':method': 'POST',
      ':scheme': 'http',
      ':path': path,
      ':authority': authority,
      'content-type': 'application/grpc',
      te: 'trailers',
      'user-agent': 'grpc-go/1.51.0',
      ...extra,
    });
    const chunks: Buffer[] = [];
    let status: number | undefined;
    let trailers: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => {
      status = h[':status'];
      // Trailers-only answers carry grpc-status in the headers.
      trailers = { ...h };
    });
    req.on('trailers', (t) => {
      trailers = { ...trailers, ...t };
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => undefined);
    req.on('close', () =>
      resolve({
        status,
        grpcStatus: trailers['grpc-status'] as string | undefined,
        grpcMessage: trailers['grpc-message'] as string | undefined,
        body: Buffer.concat(chunks),
        rstCode: req.rstCode ?? 0,
      }),
    );
    req.on('frameError', (_t, code) => reject(new Error(`frame error ${code}`)));
    req.end(grpcFrame(msg));
  });
}

function openSession(socket: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2.connect('http://localhost', { createConnection: () => connect(socket) });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

const versionReq = () => toBinary(VersionRequestSchema, create(VersionRequestSchema, { version: '0.1.0' }));

for (const [label, authority] of [
  ['the socket path', '/run/berth/berth.sock'],
  ['an empty', ''],
] as const) {
  test(`a client sending ${label} as :authority gets real answers, several on one connection`, { skip }, async () => {
    const session = await openSession(berthd.socket);
    try {
      for (let i = 0; i < 3; i++) {
        const a = await rawCall(session, '/runtime.v1.RuntimeService/Version', authority, versionReq());
        assert.equal(a.rstCode, 0, `call ${i}: stream reset with code ${a.rstCode}`);
        assert.equal(a.status, 200);
        assert.equal(a.grpcStatus, '0', `call ${i}: grpc-status ${a.grpcStatus} ${a.grpcMessage ?? ''}`);
        const v = fromBinary(VersionResponseSchema, unframe(a.body));
        assert.equal(v.runtimeName, 'berth');
        assert.equal(v.runtimeApiVersion, 'v1');
        assert.ok(v.runtimeVersion.length > 0);
      }
      // A different RPC and a header that grows the block past what fits the static table.
      const l = await rawCall(
        session,
        '/runtime.v1.RuntimeService/ListPodSandbox',
        authority,
        toBinary(ListPodSandboxRequestSchema, create(ListPodSandboxRequestSchema, {})),
        {
          'x-padding': 'p'.repeat(20_000),
        },
      );
      assert.equal(l.grpcStatus, '0', `ListPodSandbox: ${l.grpcStatus} ${l.grpcMessage ?? ''}`);
      assert.deepEqual(fromBinary(ListPodSandboxResponseSchema, unframe(l.body)).items, []);
      // An error answer still arrives as a gRPC status, not a reset.
      const bad = await rawCall(session, '/runtime.v1.RuntimeService/PodSandboxStatus', authority, new Uint8Array());
      assert.equal(bad.rstCode, 0);
      assert.notEqual(bad.grpcStatus, '0');
    } finally {
      session.close();
    }
  });
}

// A connection whose first request carries a refused authority stays filtered for its whole
// life, whatever later requests send (one that starts clean is served natively, see
// h2-authority.ts and test/unit/h2-authority.test.ts).
test('a connection that starts with a socket path and later mixes in normal authorities is served', { skip }, async () => {
  const session = await openSession(berthd.socket);
  try {
    for (const authority of [berthd.socket, 'localhost', berthd.socket, 'localhost']) {
      const a = await rawCall(session, '/runtime.v1.RuntimeService/Version', authority, versionReq());
      assert.equal(a.rstCode, 0, `${authority}: stream reset with code ${a.rstCode}`);
      assert.equal(a.grpcStatus, '0');
      assert.equal(fromBinary(VersionResponseSchema, unframe(a.body)).runtimeName, 'berth');
    }
  } finally {
    session.close();
  }
});

test('current clients (grpc-js, authority localhost) keep working, large answers included', { skip }, async () => {
  const v = await berthd.cri.runtime.version({ version: 'v1' });
  assert.equal(v.runtimeName, 'berth');
  const imgs = await berthd.cri.image.listImages({});
  assert.ok(Array.isArray(imgs.images));
  const st = await berthd.cri.runtime.status({ verbose: true });
  assert.ok(st.status?.conditions.some((c) => c.type === 'RuntimeReady'));
});
