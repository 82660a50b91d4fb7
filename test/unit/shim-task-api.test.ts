/**
 * The shim's lean protobuf tables (src/shim/task-api.ts, src/ttrpc/envelope.ts on
 * src/ttrpc/pb.ts) against the protobuf-es code generated from the same .proto files: every
 * field number, name and kind matches, and bytes written by one side decode on the other.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create, fromBinary, toBinary, ScalarType, type DescMessage, type DescField } from '@bufbuild/protobuf';
import { decode, encode, schema, packAny, timestamp, type Schema } from '../../src/ttrpc/pb.js';
import { decodeRequest, decodeResponse, encodeRequest, encodeResponse } from '../../src/ttrpc/envelope.js';
import * as T from '../../src/shim/task-api.js';
import * as ShimPb from '../../src/api/containerd/runtime/v2/task/shim_pb.js';
import * as EvPb from '../../src/api/containerd/events/task_pb.js';
import * as OciPb from '../../src/api/containerd/runc/options/oci_pb.js';
import * as V1Pb from '../../src/api/cgroups/stats/v1/metrics_pb.js';
import * as V2Pb from '../../src/api/cgroups/cgroup2/stats/metrics_pb.js';
import * as TtrpcPb from '../../src/api/ttrpc/ttrpc_pb.js';
import * as EventsSvcPb from '../../src/api/containerd/services/ttrpc/events/v1/events_pb.js';
import * as MountPb from '../../src/api/containerd/types/mount_pb.js';
import * as TaskTypesPb from '../../src/api/containerd/types/task/task_pb.js';

const registry = new Map<string, DescMessage>();
for (const mod of [ShimPb, EvPb, OciPb, V1Pb, V2Pb, TtrpcPb, EventsSvcPb, MountPb, TaskTypesPb]) {
  for (const v of Object.values(mod)) {
    const d = v as { kind?: string; typeName?: string };
    if (d && d.kind === 'message' && d.typeName) registry.set(d.typeName, v as DescMessage);
  }
}

const scalarOf: Record<string, ScalarType> = {
  string: ScalarType.STRING,
  bytes: ScalarType.BYTES,
  bool: ScalarType.BOOL,
  int32: ScalarType.INT32,
  uint32: ScalarType.UINT32,
  int64: ScalarType.INT64,
  uint64: ScalarType.UINT64,
};

/** Tables the shim fills only in part (it never writes the other fields). */
const PARTIAL = new Set(['io.containerd.cgroups.v1.Metrics', 'io.containerd.cgroups.v2.Metrics', 'io.containerd.cgroups.v2.MemoryStat']);

function checkField(desc: DescMessage, f: DescField, spec: readonly unknown[]): void {
  const [no, name, kind, card] = spec as [number, string, string | Schema, string | undefined];
  const where = `${desc.typeName}.${name} (#${no})`;
  assert.equal(f.localName, name, `${where}: name`);
  if (card === 'map') {
    assert.equal(f.fieldKind, 'map', `${where}: map`);
    return;
  }
  if (card === 'repeated') assert.equal(f.fieldKind, 'list', `${where}: repeated`);
  else assert.notEqual(f.fieldKind, 'list', `${where}: not repeated`);
  if (typeof kind !== 'string') {
    const msg = f.fieldKind === 'list' ? f.message : f.fieldKind === 'message' ? f.message : undefined;
    assert.ok(msg, `${where}: is a message`);
    assert.equal(msg.typeName, kind.typeName, `${where}: message type`);
    checkSchema(kind);
    return;
  }
  if (kind === 'enum') {
    assert.equal(f.fieldKind, 'enum', `${where}: enum`);
    return;
  }
  const scalar = f.fieldKind === 'scalar' ? f.scalar : f.fieldKind === 'list' ? f.scalar : undefined;
  assert.equal(scalar, scalarOf[kind], `${where}: scalar kind ${kind}`);
}

const checked = new Set<string>();
function checkSchema(s: Schema): void {
  if (checked.has(s.typeName) || s.typeName.startsWith('google.protobuf.')) return;
  checked.add(s.typeName);
  const desc = registry.get(s.typeName);
  assert.ok(desc, `no generated message ${s.typeName}`);
  for (const spec of s.fields) {
    const f = desc.fields.find((x) => x.number === spec[0]);
    assert.ok(f, `${s.typeName}: no field #${spec[0]}`);
    checkField(desc, f, spec);
  }
  if (!PARTIAL.has(s.typeName)) {
    const mine = new Set(s.fields.map((x) => x[0]));
    for (const f of desc.fields) assert.ok(mine.has(f.number), `${s.typeName}: field ${f.localName} (#${f.number}) missing from the lean table`);
  }
}

test('every lean shim table matches the generated protobuf-es descriptor', () => {
  for (const v of Object.values(T)) {
    if (v && typeof v === 'object' && 'typeName' in v && 'fields' in v) checkSchema(v as Schema);
  }
  for (const s of Object.values(T.Ev)) checkSchema(s);
  assert.ok(checked.size >= 40, `checked ${checked.size} tables`);
  for (const [k, v] of Object.entries(T.Status)) assert.equal(TaskTypesPb.Status[k as keyof typeof TaskTypesPb.Status], v, `Status.${k}`);
});

test('a CreateTaskRequest written by protobuf-es decodes with the lean table', () => {
  const opts = toBinary(OciPb.OptionsSchema, create(OciPb.OptionsSchema, { binaryName: 'crun', root: '/r', systemdCgroup: true }));
  const bytes = toBinary(
    ShimPb.CreateTaskRequestSchema,
    create(ShimPb.CreateTaskRequestSchema, {
      id: 'c1',
      bundle: '/b',
      rootfs: [{ type: 'overlay', source: 'overlay', options: ['lowerdir=/a', 'upperdir=/u'] }],
      terminal: true,
      stdout: 'file:///log',
      options: { typeUrl: 'containerd.runc.v1.Options', value: opts },
    }),
  );
  const req = decode(T.CreateTaskRequestS, bytes) as unknown as T.CreateTaskRequest;
  assert.equal(req.id, 'c1');
  assert.equal(req.stdin, '');
  assert.equal(req.terminal, true);
  assert.deepEqual(req.rootfs, [{ type: 'overlay', source: 'overlay', target: '', options: ['lowerdir=/a', 'upperdir=/u'] }]);
  assert.equal(req.options?.typeUrl, 'containerd.runc.v1.Options');
  const o = decode(T.OptionsS, req.options?.value ?? new Uint8Array()) as unknown as T.Options;
  assert.equal(o.binaryName, 'crun');
  assert.equal(o.systemdCgroup, true);
  assert.equal(o.noPivotRoot, false);
});

test('maps, 64-bit values, negative int32 and timestamps survive both directions', () => {
  const upd = toBinary(
    ShimPb.UpdateTaskRequestSchema,
    create(ShimPb.UpdateTaskRequestSchema, { id: 'x', annotations: { a: '1', 'io.berth.shim.reopen-log': 'true', empty: '' } }),
  );
  const u = decode(T.UpdateTaskRequestS, upd) as unknown as T.UpdateTaskRequest;
  assert.deepEqual({ ...u.annotations }, { a: '1', 'io.berth.shim.reopen-log': 'true', empty: '' });
  assert.equal(u.resources, undefined);

  const when = new Date('2026-11-27T01:02:03.456Z');
  const del = fromBinary(ShimPb.DeleteResponseSchema, encode(T.DeleteResponseS, { pid: 4_000_000_000, exitStatus: 137, exitedAt: timestamp(when) }));
  assert.equal(del.pid, 4_000_000_000);
  assert.equal(del.exitStatus, 137);
  assert.equal(del.exitedAt?.seconds, BigInt(Math.floor(when.getTime() / 1000)));
  assert.equal(del.exitedAt?.nanos, 456_000_000);

  const req = decodeRequest(toBinary(TtrpcPb.RequestSchema, create(TtrpcPb.RequestSchema, { service: 's', method: 'm', timeoutNano: 9_007_199_254_740_993n, metadata: [{ key: 'k', value: 'v' }] })));
  assert.equal(req.timeoutNano, 9_007_199_254_740_993n);
  assert.deepEqual(req.metadata, [{ key: 'k', value: 'v' }]);
  const neg = fromBinary(TtrpcPb.ResponseSchema, encodeResponse({ status: { code: -5, message: 'neg' } }));
  assert.equal(neg.status?.code, -5);
  const back = decodeResponse(toBinary(TtrpcPb.ResponseSchema, create(TtrpcPb.ResponseSchema, { status: { code: -5, message: 'm' }, payload: new Uint8Array([1, 2]) })));
  assert.equal(back.status?.code, -5);
  assert.deepEqual([...back.payload], [1, 2]);
  const r2 = fromBinary(TtrpcPb.RequestSchema, encodeRequest({ service: 'a', method: 'b', payload: new Uint8Array([7]), timeoutNano: 5n, metadata: [{ key: 'x', value: 'y' }] }));
  assert.equal(r2.timeoutNano, 5n);
  assert.equal(r2.metadata[0]?.value, 'y');
});

test('cgroup metrics written with the lean table decode as io.containerd.cgroups.v1.Metrics', () => {
  const m = {
    pids: { current: 3n, limit: 0n },
    cpu: { usage: { total: 123n, user: 10n, kernel: 0n, perCpu: [1n, 2n, 0xffffffffffffffffn] }, throttling: { periods: 1n } },
    memory: { cache: 5n, totalUnevictable: 32n, usage: { usage: 4096n, limit: 0xffffffffffffffffn }, kernelTcp: { failcnt: 2n } },
    memoryOomControl: { oomKill: 1n },
  };
  const any = packAny(T.V1MetricsS, m);
  assert.equal(any.typeUrl, 'io.containerd.cgroups.v1.Metrics');
  const d = fromBinary(V1Pb.MetricsSchema, any.value);
  assert.equal(d.pids?.current, 3n);
  assert.deepEqual(d.cpu?.usage?.perCpu, [1n, 2n, 0xffffffffffffffffn]);
  assert.equal(d.cpu?.throttling?.periods, 1n);
  assert.equal(d.memory?.totalUnevictable, 32n);
  assert.equal(d.memory?.usage?.limit, 0xffffffffffffffffn);
  assert.equal(d.memory?.kernelTcp?.failcnt, 2n);
  assert.equal(d.memoryOomControl?.oomKill, 1n);
  const v2 = fromBinary(V2Pb.MetricsSchema, encode(T.V2MetricsS, { memory: { anon: 1n, pgmajfault: 19n, usage: 32n, swapLimit: 35n }, memoryEvents: { oomKill: 5n } }));
  assert.equal(v2.memory?.pgmajfault, 19n);
  assert.equal(v2.memory?.usage, 32n);
  assert.equal(v2.memory?.swapLimit, 35n);
  assert.equal(v2.memoryEvents?.oomKill, 5n);
});

test('events encode as the generated containerd.events messages', () => {
  const when = new Date(1_700_000_000_123);
  const exit = fromBinary(EvPb.TaskExitSchema, encode(T.Ev.TaskExit, { containerId: 'c', id: 'e', pid: 42, exitStatus: 1, exitedAt: timestamp(when) }));
  assert.deepEqual([exit.containerId, exit.id, exit.pid, exit.exitStatus], ['c', 'e', 42, 1]);
  assert.equal(exit.exitedAt?.nanos, 123_000_000);
  const cr = fromBinary(EvPb.TaskCreateSchema, encode(T.Ev.TaskCreate, { containerId: 'c', rootfs: [{ type: 'bind', source: '/s', options: ['rbind'] }], io: { stdout: '/o', terminal: true }, pid: 7 }));
  assert.equal(cr.rootfs[0]?.options[0], 'rbind');
  assert.equal(cr.io?.terminal, true);
  const fwd = fromBinary(
    EventsSvcPb.ForwardRequestSchema,
    encode(T.ForwardRequestS, { envelope: { timestamp: timestamp(when), namespace: 'ns', topic: '/tasks/exit', event: packAny(T.Ev.TaskOOM, { containerId: 'c' }) } }),
  );
  assert.equal(fwd.envelope?.topic, '/tasks/exit');
  assert.equal(fwd.envelope?.event?.typeUrl, 'containerd.events.TaskOOM');
  assert.equal(fromBinary(EvPb.TaskOOMSchema, fwd.envelope?.event?.value ?? new Uint8Array()).containerId, 'c');
});

test('default values are not written; unknown fields are skipped; malformed input throws', () => {
  assert.equal(encode(T.StateResponseS, { id: '', pid: 0, terminal: false, exitedAt: undefined }).length, 0);
  // field 15 (unknown, varint) and field 16 (unknown, length-delimited) before a known field
  const bytes = new Uint8Array([0x78, 0x96, 0x01, 0x82, 0x01, 0x02, 0x61, 0x62, 0x0a, 0x01, 0x7a]);
  assert.equal((decode(T.StateRequestS, bytes) as unknown as T.IdExecReq).id, 'z');
  assert.throws(() => decode(T.StateRequestS, new Uint8Array([0x0a, 0x05, 0x61])), /premature EOF/);
  assert.throws(() => decode(T.StateRequestS, new Uint8Array([0x08, 0x01])), /wrong wire type/);
  assert.throws(() => decode(T.StateRequestS, new Uint8Array([0x0a, 0x01, 0xff])), TypeError);
  // unpacked repeated scalars (older writers) are accepted too
  const s = schema('t', [[1, 'xs', 'uint64', 'repeated']]);
  assert.deepEqual(decode(s, new Uint8Array([0x08, 0x01, 0x08, 0x02]))['xs'], [1n, 2n]);
});
