// Wire-format checks for the generated protobuf code in src/api.
// Field numbers are the contract with kubelet, containerd and shim peers, so besides
// round-trips we pin exact bytes and compare our descriptors with the ones compiled
// into the installed containerd binaries (when present).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { create, fromBinary, toBinary, createRegistry } from '@bufbuild/protobuf';
import type { DescFile } from '@bufbuild/protobuf';
import {
  anyIs,
  anyPack,
  anyUnpack,
  AnySchema,
  FileDescriptorProtoSchema,
  timestampFromDate,
  timestampDate,
  type DescriptorProto,
  type FileDescriptorProto,
} from '@bufbuild/protobuf/wkt';

import { RequestSchema, ResponseSchema, file_ttrpc_ttrpc } from '../../src/api/ttrpc/ttrpc_pb.js';
import {
  ContainerConfigSchema,
  ImageSpecSchema,
  ImageService,
  PodSandboxConfigSchema,
  PodSandboxMetadataSchema,
  Protocol,
  RuntimeService,
  Signal,
  file_cri_runtime_v1_api,
} from '../../src/api/cri/runtime/v1/api_pb.js';
import { CreateTaskRequestSchema, StatsResponseSchema, Task, file_containerd_runtime_v2_task_shim } from '../../src/api/containerd/runtime/v2/task/shim_pb.js';
import { file_containerd_types_mount } from '../../src/api/containerd/types/mount_pb.js';
import { file_containerd_types_task_task } from '../../src/api/containerd/types/task/task_pb.js';
import { OptionsSchema, file_containerd_runc_options_oci } from '../../src/api/containerd/runc/options/oci_pb.js';
import { TaskExitSchema, file_containerd_events_task } from '../../src/api/containerd/events/task_pb.js';
import {
  EnvelopeSchema,
  Events as TtrpcEvents,
  file_containerd_services_ttrpc_events_v1_events,
} from '../../src/api/containerd/services/ttrpc/events/v1/events_pb.js';
import { file_containerd_services_events_v1_events } from '../../src/api/containerd/services/events/v1/events_pb.js';
import { MetricsSchema as CgroupV1MetricsSchema, file_cgroups_stats_v1_metrics } from '../../src/api/cgroups/stats/v1/metrics_pb.js';
import { file_cgroups_cgroup2_stats_metrics } from '../../src/api/cgroups/cgroup2/stats/metrics_pb.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('ttrpc Request encodes fields 1-5 with the tags ttrpc peers expect', () => {
  const req = create(RequestSchema, {
    service: 's',
    method: 'm',
    payload: new Uint8Array([1, 2]),
    timeoutNano: 5n,
    metadata: [{ key: 'k', value: 'v' }],
  });
  const bytes = toBinary(RequestSchema, req);
  // 0a=service(1,LEN) 12=method(2,LEN) 1a=payload(3,LEN) 20=timeout_nano(4,varint) 2a=metadata(5,LEN)
  assert.equal(hex(bytes), '0a0173' + '12016d' + '1a020102' + '2005' + '2a060a016b120176');
  const back = fromBinary(RequestSchema, bytes);
  assert.equal(back.service, 's');
  assert.equal(back.timeoutNano, 5n);
  assert.deepEqual(
    back.metadata.map((kv) => [kv.key, kv.value]),
    [['k', 'v']],
  );
});

test('ttrpc Response carries a google.rpc.Status-shaped status in field 1', () => {
  const bytes = toBinary(ResponseSchema, create(ResponseSchema, { status: { code: 5, message: 'x' } }));
  assert.equal(hex(bytes), '0a05' + '0805' + '120178');
  const back = fromBinary(ResponseSchema, bytes);
  assert.equal(back.status?.code, 5);
  assert.equal(back.payload.length, 0);
});

test('CRI PodSandboxConfig round-trips and metadata uses fields 1-4', () => {
  const cfg = create(PodSandboxConfigSchema, {
    metadata: { name: 'web', uid: 'u1', namespace: 'default', attempt: 2 },
    hostname: 'web-0',
    logDirectory: '/var/log/pods/x',
    dnsConfig: { servers: ['198.18.0.10'], searches: ['svc.cluster.local'] },
    portMappings: [{ protocol: Protocol.UDP, containerPort: 53, hostPort: 5353, hostIp: '127.0.0.1' }],
    labels: { app: 'web' },
    annotations: { a: 'b' },
    linux: { cgroupParent: '/kubepods', sysctls: { 'net.ipv4.ip_forward': '1' } },
  });
  const back = fromBinary(PodSandboxConfigSchema, toBinary(PodSandboxConfigSchema, cfg));
  assert.equal(back.metadata?.namespace, 'default');
  assert.equal(back.metadata?.attempt, 2);
  assert.equal(back.portMappings[0]?.protocol, Protocol.UDP);
  assert.deepEqual(back.labels, { app: 'web' });
  assert.equal(back.linux?.sysctls['net.ipv4.ip_forward'], '1');

  const meta = toBinary(PodSandboxMetadataSchema, create(PodSandboxMetadataSchema, { name: 'a', uid: 'u', namespace: 'n', attempt: 2 }));
  assert.equal(hex(meta), '0a0161' + '120175' + '1a016e' + '2002');
});

test('CRI high-numbered fields decode from hand-built bytes', () => {
  // ContainerConfig.stop_signal is field 18 (varint): tag 18<<3 = 0x90 0x01; SIGTERM = 23.
  const cc = fromBinary(ContainerConfigSchema, new Uint8Array([0x90, 0x01, 23]));
  assert.equal(cc.stopSignal, Signal.SIGTERM);
  // ImageSpec.user_specified_image is field 18 (LEN): tag 0x92 0x01.
  const spec = fromBinary(ImageSpecSchema, new Uint8Array([0x92, 0x01, 0x01, 0x78]));
  assert.equal(spec.userSpecifiedImage, 'x');
});

test('CRI services expose the kubelet method paths', () => {
  assert.equal(RuntimeService.typeName, 'runtime.v1.RuntimeService');
  assert.equal(ImageService.typeName, 'runtime.v1.ImageService');
  assert.equal(RuntimeService.method.runPodSandbox.name, 'RunPodSandbox');
  assert.equal(RuntimeService.method.getContainerEvents.methodKind, 'server_streaming');
  assert.equal(ImageService.method.imageFsInfo.name, 'ImageFsInfo');
});

test('shim CreateTaskRequest round-trips a Mount and runc Options packed with a bare type URL', () => {
  const opts = create(OptionsSchema, { binaryName: 'runc', root: '/run/berth/runc', systemdCgroup: false });
  // containerd's typeurl packs proto messages under their bare full name (no type.googleapis.com/).
  const options = create(AnySchema, { typeUrl: OptionsSchema.typeName, value: toBinary(OptionsSchema, opts) });
  const req = create(CreateTaskRequestSchema, {
    id: 'c1',
    bundle: '/run/berth/c1',
    rootfs: [{ type: 'overlay', source: 'overlay', options: ['lowerdir=/a', 'upperdir=/b', 'workdir=/c'] }],
    stdout: '/run/berth/c1/stdout',
    options,
  });
  const bytes = toBinary(CreateTaskRequestSchema, req);
  assert.equal(bytes[0], 0x0a); // id: field 1, LEN
  assert.ok(bytes.includes(0x52), 'options is field 10 (tag 0x52)');
  const back = fromBinary(CreateTaskRequestSchema, bytes);
  assert.equal(back.rootfs[0]?.type, 'overlay');
  assert.deepEqual(back.rootfs[0]?.options, ['lowerdir=/a', 'upperdir=/b', 'workdir=/c']);
  assert.equal(back.options?.typeUrl, 'containerd.runc.v1.Options');
  const registry = createRegistry(OptionsSchema);
  const unpacked = back.options ? anyUnpack(back.options, registry) : undefined;
  assert.ok(unpacked && anyIs(back.options!, OptionsSchema));
  assert.equal((unpacked as { root?: string }).root, '/run/berth/runc');
  assert.equal(`/${Task.typeName}/${Task.method.create.name}`, '/containerd.task.v2.Task/Create');
});

test('stats and events nest through Any and Timestamp', () => {
  const metrics = create(CgroupV1MetricsSchema, { memory: { usage: { usage: 4096n, limit: 1n << 30n } }, pids: { current: 3n } });
  const stats = fromBinary(StatsResponseSchema, toBinary(StatsResponseSchema, create(StatsResponseSchema, { stats: anyPack(CgroupV1MetricsSchema, metrics) })));
  const m = stats.stats ? anyUnpack(stats.stats, CgroupV1MetricsSchema) : undefined;
  assert.equal(m?.memory?.usage?.usage, 4096n);
  assert.equal(m?.pids?.current, 3n);

  const when = new Date('2024-01-02T03:04:05.678Z');
  const exit = create(TaskExitSchema, { containerId: 'c1', id: 'c1', pid: 42, exitStatus: 137, exitedAt: timestampFromDate(when) });
  const env = create(EnvelopeSchema, {
    timestamp: timestampFromDate(when),
    namespace: 'k8s.io',
    topic: '/tasks/exit',
    event: create(AnySchema, { typeUrl: TaskExitSchema.typeName, value: toBinary(TaskExitSchema, exit) }),
  });
  const envBack = fromBinary(EnvelopeSchema, toBinary(EnvelopeSchema, env));
  assert.equal(envBack.topic, '/tasks/exit');
  const exitBack = envBack.event ? anyUnpack(envBack.event, TaskExitSchema) : undefined;
  assert.equal(exitBack?.exitStatus, 137);
  assert.equal(exitBack?.exitedAt && timestampDate(exitBack.exitedAt).getTime(), when.getTime());
  assert.equal(`/${TtrpcEvents.typeName}/${TtrpcEvents.method.forward.name}`, '/containerd.services.events.ttrpc.v1.Events/Forward');
});

// ---- interop: compare with descriptors compiled into containerd binaries ----

/** Pull every gzip-compressed FileDescriptorProto that a Go binary registers at init. */
function embeddedDescriptors(binary: string): FileDescriptorProto[] {
  const buf = readFileSync(binary);
  const out: FileDescriptorProto[] = [];
  for (let i = buf.indexOf(0x1f); i >= 0 && i < buf.length - 10; i = buf.indexOf(0x1f, i + 1)) {
    if (buf[i + 1] !== 0x8b || buf[i + 2] !== 0x08) continue;
    let raw: Buffer;
    try {
      raw = inflateRawSync(buf.subarray(i + 10, i + 10 + 1_000_000));
    } catch {
      continue;
    }
    try {
      const fd = fromBinary(FileDescriptorProtoSchema, raw);
      if (fd.name.endsWith('.proto') && fd.package) out.push(fd);
    } catch {
      // Random bytes that happened to inflate; not a descriptor.
    }
  }
  return out;
}

/** Flatten a file to "kind path -> signature" entries; type names relative to the package. */
function signatures(fd: FileDescriptorProto): Map<string, string> {
  const sig = new Map<string, string>();
  const rel = (t: string): string => t.replace(/^\./, '').replace(`${fd.package}.`, '');
  const walk = (d: DescriptorProto, prefix: string): void => {
    const name = prefix + d.name;
    for (const f of d.field) sig.set(`field ${name}.${f.number}`, `${f.name} ${f.type} ${f.label} ${rel(f.typeName)}`);
    for (const n of d.nestedType) walk(n, `${name}.`);
    for (const e of d.enumType) for (const v of e.value) sig.set(`enum ${name}.${e.name}.${v.number}`, v.name);
  };
  for (const d of fd.messageType) walk(d, '');
  for (const e of fd.enumType) for (const v of e.value) sig.set(`enum ${e.name}.${v.number}`, v.name);
  for (const s of fd.service) {
    for (const m of s.method) {
      sig.set(`rpc ${s.name}.${m.name}`, `${rel(m.inputType)} ${rel(m.outputType)} ${m.clientStreaming === true} ${m.serverStreaming === true}`);
    }
  }
  return sig;
}

/**
 * Fields newer cri-api changed in a wire-compatible way (string → bytes, same tag and wire
 * type): KeyValue.value became bytes in cri-api 1.37 so a value that is not UTF-8 does not fail
 * the request; containerd 1.6 still has the string.
 */
const WIRE_COMPATIBLE: Record<string, [string, string]> = { 'field KeyValue.2': ['value 9 1 ', 'value 12 1 '] };

/** Upstream entries missing or different in ours (extra entries in ours are allowed: newer APIs). */
function mismatches(ours: DescFile, upstream: FileDescriptorProto): string[] {
  const a = signatures(ours.proto);
  const problems: string[] = [];
  for (const [k, v] of signatures(upstream)) {
    const compat = WIRE_COMPATIBLE[k];
    if (compat && v === compat[0] && a.get(k) === compat[1]) continue;
    if (a.get(k) !== v) problems.push(`${k}: ours=${a.get(k) ?? 'missing'} upstream=${v}`);
  }
  return problems;
}

const CONTAINERD = '/usr/bin/containerd';

test('our descriptors match the containerd binary field by field', { skip: !existsSync(CONTAINERD) && `${CONTAINERD} not installed` }, () => {
  const upstream = embeddedDescriptors(CONTAINERD);
  const find = (pkg: string, suffix: string): FileDescriptorProto => {
    const fd = upstream.find((f) => f.package === pkg && f.name.endsWith(suffix));
    assert.ok(fd, `containerd binary has no descriptor ${pkg} ${suffix}`);
    return fd;
  };
  const pairs: Array<[DescFile, FileDescriptorProto]> = [
    [file_containerd_runtime_v2_task_shim, find('containerd.task.v2', 'task/shim.proto')],
    [file_containerd_types_mount, find('containerd.types', 'types/mount.proto')],
    [file_containerd_types_task_task, find('containerd.v1.types', 'task/task.proto')],
    [file_containerd_events_task, find('containerd.events', 'events/task.proto')],
    [file_containerd_services_ttrpc_events_v1_events, find('containerd.services.events.ttrpc.v1', 'events.proto')],
    [file_containerd_services_events_v1_events, find('containerd.services.events.v1', 'events.proto')],
    [file_containerd_runc_options_oci, find('containerd.runc.v1', 'options/oci.proto')],
    [file_cgroups_stats_v1_metrics, find('io.containerd.cgroups.v1', 'metrics.proto')],
    [file_cgroups_cgroup2_stats_metrics, find('io.containerd.cgroups.v2', 'metrics.proto')],
  ];
  for (const [ours, theirs] of pairs) assert.deepEqual(mismatches(ours, theirs), [], ours.name);

  // ttrpc.Status must be wire-identical to google.rpc.Status.
  const status = find('google.rpc', 'status.proto');
  const ttrpcStatus = signatures(file_ttrpc_ttrpc.proto);
  for (const [k, v] of signatures(status)) assert.equal(ttrpcStatus.get(k), v, k);

  // The CRI in containerd 1.6 predates ours; the only field upstream since redefined is
  // ContainerEventResponse.pod_sandbox_status (formerly pod_sandbox_metadata).
  const cri = mismatches(file_cri_runtime_v1_api, find('runtime.v1', 'api.proto'));
  assert.deepEqual(
    cri.filter((p) => !p.startsWith('field ContainerEventResponse.4:')),
    [],
  );
});
