import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import {
  ContainerEventResponseSchema,
  ContainerEventType,
  ContainerSchema,
  ContainerState,
  ContainerStatsSchema,
  PodSandboxSchema,
  PodSandboxState,
} from '../../src/api/cri/runtime/v1/api_pb.js';
import { containersTable, filterContainers } from '../../src/cli/ps.js';
import { filterPods, podsTable } from '../../src/cli/pods.js';
import { containerStatsTable, cpuPercent } from '../../src/cli/stats.js';
import { eventJson, eventLine } from '../../src/cli/events.js';
import { ago, parseContainerState, parsePodState } from '../../src/cli/format.js';
import { AmbiguousRefError, pickByRef } from '../../src/cli/resolve.js';
import { decodeInfo } from '../../src/cli/inspect.js';

const NOW = 1_700_000_000_000;
const nanosAgo = (ms: number) => BigInt(NOW - ms) * 1_000_000n;
const ID1 = 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90';
const ID2 = 'a1ffffffffff0718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90';

test('relative times read like crictl', () => {
  assert.equal(ago(nanosAgo(500), NOW), 'Less than a second ago');
  assert.equal(ago(nanosAgo(1000), NOW), '1 second ago');
  assert.equal(ago(nanosAgo(5 * 60_000), NOW), '5 minutes ago');
  assert.equal(ago(nanosAgo(2 * 3600_000), NOW), '2 hours ago');
  assert.equal(ago(nanosAgo(3 * 86400_000), NOW), '3 days ago');
  assert.equal(ago(0n, NOW), 'unknown');
});

test('state filters accept friendly names', () => {
  assert.equal(parseContainerState('Running'), ContainerState.CONTAINER_RUNNING);
  assert.equal(parseContainerState('CONTAINER_EXITED'), ContainerState.CONTAINER_EXITED);
  assert.equal(parseContainerState('sleeping'), undefined);
  assert.equal(parsePodState('NotReady'), PodSandboxState.SANDBOX_NOTREADY);
  assert.equal(parsePodState('SANDBOX_READY'), PodSandboxState.SANDBOX_READY);
  assert.equal(parsePodState('x'), undefined);
});

const pod = (id: string, name: string, ns: string, state: PodSandboxState, createdMsAgo: number) =>
  create(PodSandboxSchema, { id, metadata: { name, namespace: ns, uid: 'u', attempt: 1 }, state, createdAt: nanosAgo(createdMsAgo), runtimeHandler: '' });

test('pods table: columns, truncated ids, newest first, client-side filters', () => {
  const items = filterPods(
    [pod(ID1, 'web', 'default', PodSandboxState.SANDBOX_READY, 60_000), pod(ID2, 'db', 'prod', PodSandboxState.SANDBOX_NOTREADY, 1000)],
    {},
  );
  const lines = podsTable(items, NOW).split('\n');
  assert.match(lines[0]!, /^POD ID\s+CREATED\s+STATE\s+NAME\s+NAMESPACE\s+ATTEMPT\s+RUNTIME$/);
  assert.match(lines[1]!, /^a1ffffffffff0\s+1 second ago\s+NotReady\s+db\s+prod\s+1\s+\(default\)$/);
  assert.match(lines[2]!, /^a1b2c3d4e5f60\s+1 minute ago\s+Ready\s+web\s+default\s+1\s+\(default\)$/);
  assert.deepEqual(
    filterPods(items, { namespace: 'prod' }).map((p) => p.metadata?.name),
    ['db'],
  );
  assert.deepEqual(
    filterPods(items, { name: 'we' }).map((p) => p.metadata?.name),
    ['web'],
  );
  assert.deepEqual(
    filterPods(items, { idPrefix: 'a1b' }).map((p) => p.metadata?.name),
    ['web'],
  );
});

const ctr = (id: string, name: string, state: ContainerState) =>
  create(ContainerSchema, {
    id,
    podSandboxId: ID2,
    metadata: { name, attempt: 0 },
    image: { image: 'registry.local/busybox:1' },
    imageRef: 'sha256:' + 'f'.repeat(64),
    state,
    createdAt: nanosAgo(2000),
  });

test('ps shows running containers unless -a or a state filter is given', () => {
  const all = [ctr(ID1, 'web', ContainerState.CONTAINER_RUNNING), ctr(ID2, 'old', ContainerState.CONTAINER_EXITED)];
  assert.deepEqual(
    filterContainers(all, { all: false, stateGiven: false }).map((c) => c.metadata?.name),
    ['web'],
  );
  assert.equal(filterContainers(all, { all: true, stateGiven: false }).length, 2);
  assert.equal(filterContainers(all, { all: false, stateGiven: true }).length, 2);
  const lines = containersTable(all, NOW).split('\n');
  assert.match(lines[0]!, /^CONTAINER\s+IMAGE\s+CREATED\s+STATE\s+NAME\s+ATTEMPT\s+POD ID$/);
  assert.match(lines[1]!, /^a1b2c3d4e5f60\s+registry\.local\/busybox:1\s+2 seconds ago\s+Running\s+web\s+0\s+a1ffffffffff0$/);
});

test('names and id prefixes resolve; an ambiguous prefix is an error; unknown is undefined', () => {
  const items = [ctr(ID1, 'web', ContainerState.CONTAINER_RUNNING), ctr(ID2, 'db', ContainerState.CONTAINER_RUNNING)];
  assert.equal(pickByRef(items, ID1, 'container')?.id, ID1);
  assert.equal(pickByRef(items, 'a1f', 'container')?.id, ID2);
  assert.equal(pickByRef(items, 'web', 'container')?.id, ID1);
  assert.throws(() => pickByRef(items, 'a1', 'container'), AmbiguousRefError);
  assert.equal(pickByRef(items, 'nope', 'container'), undefined);
});

test('CPU percent comes from the usage delta over the time delta', () => {
  const s = (usage: bigint, ts: bigint) => ({ timestamp: ts, usageCoreNanoSeconds: { value: usage } }) as never;
  assert.equal(cpuPercent(s(0n, 0n), s(500_000_000n, 1_000_000_000n)), 50);
  assert.equal(cpuPercent(s(0n, 5n), s(10n, 5n)), undefined);
  assert.equal(cpuPercent(undefined, s(1n, 1n)), undefined);
  const a = create(ContainerStatsSchema, { attributes: { id: ID1, metadata: { name: 'web' } }, cpu: { timestamp: 0n, usageCoreNanoSeconds: { value: 0n } } });
  const b = create(ContainerStatsSchema, {
    attributes: { id: ID1, metadata: { name: 'web' } },
    cpu: { timestamp: 1_000_000_000n, usageCoreNanoSeconds: { value: 250_000_000n } },
    memory: { workingSetBytes: { value: 2_500_000n } },
    writableLayer: { usedBytes: { value: 4096n }, inodesUsed: { value: 12n } },
  });
  const lines = containerStatsTable([a], [b]).split('\n');
  assert.match(lines[0]!, /^CONTAINER\s+NAME\s+CPU %\s+MEM\s+DISK\s+INODES$/);
  assert.match(lines[1]!, /^a1b2c3d4e5f60\s+web\s+25\.00\s+2\.50MB\s+4\.10kB\s+12$/);
});

test('events print one readable line, or one JSON line', () => {
  const e = create(ContainerEventResponseSchema, {
    containerId: ID1,
    containerEventType: ContainerEventType.CONTAINER_STOPPED_EVENT,
    createdAt: BigInt(NOW) * 1_000_000n,
    podSandboxStatus: { id: ID2, metadata: { name: 'p', namespace: 'default' }, state: PodSandboxState.SANDBOX_READY },
    containersStatuses: [{ id: ID1, metadata: { name: 'web' }, state: ContainerState.CONTAINER_EXITED, exitCode: 3, reason: 'Error' }],
  });
  assert.equal(
    eventLine(e),
    `${new Date(NOW).toISOString()} stopped container=a1b2c3d4e5f60 name=web state=Exited exit=3 reason=Error pod=a1ffffffffff0 pod-name=default/p pod-state=Ready`,
  );
  const j = JSON.parse(eventJson(e)) as { containerId: string; createdAt: number; $typeName?: string };
  assert.equal(j.containerId, ID1);
  assert.equal(j.createdAt, NOW * 1_000_000);
  assert.equal(j.$typeName, undefined);
  assert.ok(!eventJson(e).includes('\n'));
});

test('verbose info values decode as JSON where they are JSON', () => {
  assert.deepEqual(decodeInfo({ info: '{"pid":5}', note: 'plain' }), { info: { pid: 5 }, note: 'plain' });
});
