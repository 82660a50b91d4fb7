/** Wire compatibility of berth's CRI proto with what newer and older kubelets send. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { AttachRequestSchema, ContainerConfigSchema, ExecRequestSchema, KeyValueSchema } from '../../src/api/cri/runtime/v1/api_pb.js';

const key = (field: number, wire: number) => (field << 3) | wire;
const lenField = (field: number, bytes: Uint8Array) => Buffer.concat([Buffer.from([key(field, 2), bytes.length]), bytes]);

test('an env value that is not UTF-8 decodes (bytes, cri-api 1.37), and an old string value reads the same', () => {
  const kv = Buffer.concat([lenField(1, Buffer.from('K')), lenField(2, Buffer.from([0x61, 0xff, 0xfe, 0x62]))]);
  const cfg = fromBinary(ContainerConfigSchema, lenField(6, kv));
  assert.equal(cfg.envs[0]?.key, 'K');
  assert.deepEqual([...cfg.envs[0]!.value], [0x61, 0xff, 0xfe, 0x62]);
  // What a kubelet with the string field sends is the same bytes on the wire.
  const asString = Buffer.concat([lenField(1, Buffer.from('K')), lenField(2, Buffer.from('héllo', 'utf8'))]);
  assert.equal(new TextDecoder().decode(fromBinary(KeyValueSchema, asString).value), 'héllo');
  assert.deepEqual(Buffer.from(toBinary(KeyValueSchema, create(KeyValueSchema, { key: 'K', value: Buffer.from('héllo', 'utf8') }))), asString);
});

test('ExecRequest field 7 and AttachRequest field 6 are no berth fields: what upstream puts there (KEP-6035 envs) is skipped, not a decode error', () => {
  // repeated KeyValue envs = 7 with a value that is not UTF-8: fatal for a string field 7.
  const env = Buffer.concat([lenField(1, Buffer.from('A')), lenField(2, Buffer.from([0xff]))]);
  const exec = fromBinary(ExecRequestSchema, Buffer.concat([lenField(1, Buffer.from('c1')), lenField(7, env)]));
  assert.equal(exec.containerId, 'c1');
  assert.equal('auditRequestId' in exec, false);
  const attach = fromBinary(AttachRequestSchema, Buffer.concat([lenField(1, Buffer.from('c2')), lenField(6, Buffer.from([0xff, 0x00]))]));
  assert.equal(attach.containerId, 'c2');
  assert.equal('auditRequestId' in attach, false);
});
