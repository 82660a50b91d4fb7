/**
 * Messages encoded with the generated lean tables (src/api/shim_lean.ts on src/ttrpc/pb.ts)
 * decode with protobuf-es to the same message, and protobuf-es bytes decode with the lean
 * tables to the same plain object: sub-messages, repeated messages, Any, Timestamp, enums,
 * packed repeated uint64, 64-bit values above 2^53 and map<string, string>.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape } from '@bufbuild/protobuf';
import { decode, encode, type Schema } from '../../src/ttrpc/pb.js';
import * as ShimPb from '../../src/api/containerd/runtime/v2/task/shim_pb.js';
import * as OciPb from '../../src/api/containerd/runc/options/oci_pb.js';
import * as V1Pb from '../../src/api/cgroups/stats/v1/metrics_pb.js';
import { containerd, io } from '../../src/api/shim_lean.js';

import ShimLean = containerd.task.v2;
import OciLean = containerd.runc.v1;
import V1Lean = io.containerd.cgroups.v1;
const { Status } = containerd.v1.types;

/**
 * A protobuf-es message or lean-decoded object as plain data: no $typeName, ordinary
 * prototypes, and no keys for unset sub-messages (protobuf-es leaves them out, pb.ts sets
 * them to undefined: both mean "not present").
 */
function plain(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof Uint8Array || v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (k !== '$typeName' && x !== undefined) out[k] = plain(x);
  return out;
}

/**
 * Both directions for one message: lean encode → protobuf-es decode, and protobuf-es encode →
 * lean decode, each compared field by field (defaults included) with the other side's view.
 */
function roundTrip<D extends DescMessage>(pb: D, lean: Schema, init: MessageInitShape<D>, leanValue: object): void {
  const pbMsg = create(pb, init);
  const fromLean = fromBinary(pb, encode(lean, leanValue));
  assert.deepEqual(plain(fromLean), plain(pbMsg), `${pb.typeName}: lean → protobuf-es`);
  const toLean = decode(lean, toBinary(pb, pbMsg));
  assert.deepEqual(plain(toLean), plain(pbMsg), `${pb.typeName}: protobuf-es → lean`);
}

test('a CreateTaskRequest with a Mount and an Any options survives lean ↔ protobuf-es', () => {
  const options: OciLean.Options = {
    noPivotRoot: true,
    noNewKeyring: false,
    shimCgroup: '',
    ioUid: 1000,
    ioGid: 0,
    binaryName: 'crun',
    root: '/run/berth/runc',
    criuPath: '',
    systemdCgroup: true,
    criuImagePath: '',
    criuWorkPath: '',
  };
  // The Any payload itself crosses codecs too: lean-written Options read by protobuf-es.
  const optBytes = encode(OciLean.OptionsS, options);
  assert.equal(fromBinary(OciPb.OptionsSchema, optBytes).binaryName, 'crun');
  const req: ShimLean.CreateTaskRequest = {
    id: 'c1',
    bundle: '/run/berth/bundles/c1',
    rootfs: [
      { type: 'overlay', source: 'overlay', target: '', options: ['lowerdir=/l1:/l2', 'upperdir=/u', 'workdir=/w'] },
      { type: 'bind', source: '/data', target: 'mnt/data', options: [] },
    ],
    terminal: true,
    stdin: '',
    stdout: 'fifo:///run/o',
    stderr: 'fifo:///run/e',
    checkpoint: '',
    parentCheckpoint: '',
    options: { typeUrl: 'containerd.runc.v1.Options', value: optBytes },
  };
  roundTrip(ShimPb.CreateTaskRequestSchema, ShimLean.CreateTaskRequestS, req, req);
  assert.deepEqual(plain(decode(OciLean.OptionsS, toBinary(OciPb.OptionsSchema, create(OciPb.OptionsSchema, options)))), options);
});

test('a StateResponse with a Timestamp and an enum status survives lean ↔ protobuf-es', () => {
  const res: ShimLean.StateResponse = {
    id: 'c1',
    bundle: '/b',
    pid: 4_000_000_000,
    status: Status.STOPPED,
    stdin: '',
    stdout: '/o',
    stderr: '',
    terminal: false,
    exitStatus: 137,
    exitedAt: { seconds: 1_800_000_000n, nanos: 999_999_999 },
    execId: 'exec-1',
  };
  roundTrip(ShimPb.StateResponseSchema, ShimLean.StateResponseS, res, res);
  // identical bytes too: both write fields in declaration order and skip defaults
  assert.deepEqual(encode(ShimLean.StateResponseS, res), toBinary(ShimPb.StateResponseSchema, create(ShimPb.StateResponseSchema, res)));
});

test('a cgroups v1 Metrics with nested and repeated messages survives lean ↔ protobuf-es', () => {
  const entry = (n: bigint): V1Lean.MemoryEntry => ({ limit: 0xffff_ffff_ffff_f000n, usage: n, max: n * 2n, failcnt: 0n });
  const blk = (major: bigint, value: bigint): V1Lean.BlkIOEntry => ({ op: 'Read', device: '', major, minor: 0n, value });
  const init = {
    hugetlb: [{ usage: 1n, max: 2n, failcnt: 0n, pagesize: '2MB' }],
    pids: { current: 3n, limit: 0n },
    cpu: {
      usage: { total: 123n, kernel: 0n, user: 10n, perCpu: [1n, 0n, 0xffff_ffff_ffff_ffffn] },
      throttling: { periods: 1n, throttledPeriods: 0n, throttledTime: 2n ** 60n },
    },
    memory: { cache: 5n, totalUnevictable: 32n, usage: entry(4096n), swap: entry(0n), kernelTcp: entry(7n) },
    blkio: { ioServiceBytesRecursive: [blk(8n, 4096n), blk(253n, 1n)], ioServicedRecursive: [blk(8n, 2n)] },
    rdma: { current: [{ device: 'mlx5_0', hcaHandles: 1, hcaObjects: 2 }] },
    network: [{ name: 'eth0', rxBytes: 10n, txBytes: 20n }],
    cgroupStats: { nrRunning: 1n },
    memoryOomControl: { oomKill: 1n },
  };
  const pbMsg = create(V1Pb.MetricsSchema, init);
  // The lean side gets the protobuf-es view (all defaults filled in), minus $typeName.
  const leanValue = plain(pbMsg) as V1Lean.Metrics;
  assert.equal(leanValue.cpu?.usage?.perCpu.length, 3);
  roundTrip(V1Pb.MetricsSchema, V1Lean.MetricsS, init, leanValue);
  const back = decode(V1Lean.MetricsS, toBinary(V1Pb.MetricsSchema, pbMsg)) as unknown as V1Lean.Metrics;
  assert.equal(back.blkio?.ioServiceBytesRecursive[1]?.major, 253n);
  assert.equal(back.memory?.usage?.limit, 0xffff_ffff_ffff_f000n);
});

test('UpdateTaskRequest.annotations (a map) and resources (an Any) survive lean ↔ protobuf-es', () => {
  const req: ShimLean.UpdateTaskRequest = {
    id: 'c1',
    resources: { typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources', value: new Uint8Array([0x0a, 0x00]) },
    annotations: { 'io.berth.shim.reopen-log': 'true', 'a/b': 'ü ✓', empty: '' },
  };
  roundTrip(ShimPb.UpdateTaskRequestSchema, ShimLean.UpdateTaskRequestS, req, req);
  const none = decode(ShimLean.UpdateTaskRequestS, toBinary(ShimPb.UpdateTaskRequestSchema, create(ShimPb.UpdateTaskRequestSchema, { id: 'x' })));
  assert.equal((none as unknown as ShimLean.UpdateTaskRequest).resources, undefined);
  assert.deepEqual(plain(none), { id: 'x', annotations: {} });
});
