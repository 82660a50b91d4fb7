import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, createFileRegistry } from '@bufbuild/protobuf';
import type { GenService } from '@bufbuild/protobuf/codegenv2';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { file_ttrpc_ttrpc, KeyValueSchema, StringListSchema } from '../../src/api/ttrpc/ttrpc_pb.js';
import { TtrpcClient, TtrpcServer, createClient, registerService } from '../../src/ttrpc/index.js';
import { errors, isBerthError } from '../../src/errors.js';

/**
 * A test service declared at runtime (no .proto file needed), reusing the ttrpc envelope
 * messages as request/response types:
 *   package berth.test; service Store { rpc Put(KeyValue) returns (StringList); rpc GetAll(StringList) returns (KeyValue); }
 */
const registry = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: 'berth/test/store.proto',
    package: 'berth.test',
    dependency: ['ttrpc/ttrpc.proto'],
    syntax: 'proto3',
    service: [
      {
        name: 'Store',
        method: [
          { name: 'Put', inputType: '.ttrpc.KeyValue', outputType: '.ttrpc.StringList' },
          { name: 'GetAll', inputType: '.ttrpc.StringList', outputType: '.ttrpc.KeyValue' },
        ],
      },
    ],
  }),
  (name) => (name === 'ttrpc/ttrpc.proto' ? file_ttrpc_ttrpc : undefined),
);
const StoreService = registry.getService('berth.test.Store') as unknown as GenService<{
  put: { methodKind: 'unary'; input: typeof KeyValueSchema; output: typeof StringListSchema };
  getAll: { methodKind: 'unary'; input: typeof StringListSchema; output: typeof KeyValueSchema };
}>;

async function serve(t: TestContext, server: TtrpcServer): Promise<TtrpcClient> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-ttrpc-svc-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 's.sock');
  await server.listen(path);
  t.after(() => server.shutdown());
  const c = await TtrpcClient.connect(path);
  t.after(() => c.close());
  return c;
}

test('typed service: lowerCamel methods, proto names on the wire, init objects as answers', async (t) => {
  const server = new TtrpcServer();
  const seen: string[] = [];
  registerService(server, StoreService, {
    put: (req, ctx) => {
      seen.push(`${ctx.service}/${ctx.method}`);
      return { list: [req.key, req.value] }; // init object, not a created message
    },
    getAll: async (req) => create(KeyValueSchema, { key: req.list.join(','), value: String(req.list.length) }),
  });
  const raw = await serve(t, server);
  const client = createClient(StoreService, raw);

  const put = await client.put({ key: 'k', value: 'v' });
  assert.deepEqual(put.list, ['k', 'v']);
  assert.equal(put.$typeName, 'ttrpc.StringList');
  assert.deepEqual(seen, ['berth.test.Store/Put']);

  const all = await client.getAll({ list: ['a', 'b', 'c'] });
  assert.equal(all.key, 'a,b,c');
  assert.equal(all.value, '3');
});

test('typed service: methods left out of the implementation answer Unimplemented', async (t) => {
  const server = new TtrpcServer();
  registerService(server, StoreService, { put: () => ({}) });
  const client = createClient(StoreService, await serve(t, server));
  assert.deepEqual((await client.put({})).list, []);
  await assert.rejects(client.getAll({}), (e: unknown) => isBerthError(e, 'Unimplemented') && /berth\.test\.Store.*GetAll/.test(e.message));
});

test('typed service: thrown BerthErrors keep their kind and code across the wire', async (t) => {
  const server = new TtrpcServer();
  registerService(server, StoreService, {
    put: (req) => {
      throw errors.invalidArgument('snapshot.invalid_key', `key must not be empty (value ${req.value})`);
    },
  });
  const client = createClient(StoreService, await serve(t, server));
  await assert.rejects(
    client.put({ value: 'x' }),
    (e: unknown) => isBerthError(e, 'InvalidArgument') && e.code === 'snapshot.invalid_key' && e.message === 'key must not be empty (value x)',
  );
});

test('typed service: a payload that is not the declared message answers Internal, connection stays up', async (t) => {
  const server = new TtrpcServer();
  registerService(server, StoreService, { put: (req) => ({ list: [req.key] }) });
  const raw = await serve(t, server);
  // Field 1 announced as a 127-byte string but only 1 byte follows.
  await assert.rejects(raw.call('berth.test.Store', 'Put', Uint8Array.from([0x0a, 0x7f, 0x41])), (e: unknown) => isBerthError(e, 'Internal'));
  assert.deepEqual((await createClient(StoreService, raw).put({ key: 'ok' })).list, ['ok']);
});
