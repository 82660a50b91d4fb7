/**
 * newTestContext: a RuntimeContext for unit tests of handler flows (containerd's
 * newTestCRIService): real metadata stores on a temp SQLite file, real locks, tracer and event
 * bus, and fakes for everything outside berthd (task layer, CNI, pod kernel objects, snapshots,
 * images) plus a ManualClock. Runs without root; nothing touches the host beyond a temp dir.
 */
import type { TestContext } from 'node:test';
import { join } from 'node:path';
import { openMetadata } from '../../../src/core/metadata/db.js';
import { ContainerStore, NameStore, SandboxStore, type ContainerRecord } from '../../../src/core/metadata/records.js';
import { ContainerEventBus, newHandlerState, Tracer, type RuntimeContext } from '../../../src/cri/server/runtime-context.js';
import { KeyedLock } from '../../../src/keyed-lock.js';
import type { Logger } from '../../../src/log.js';
import { tempDir } from '../tar.js';
import { ManualClock } from './clock.js';
import { Faults } from './faults.js';
import { FakeNetwork, FakePods } from './host.js';
import { FakeImages, FakeSnapshots } from './snapshots.js';
import { FakeTasks } from './tasks.js';

export const SANDBOX_IMAGE = 'registry.k8s.io/pause:3.9';

/** A logger that keeps its lines (warn and above) for assertions. */
export function recordingLogger(lines: string[] = []): Logger {
  const l: Logger = {
    debug: () => undefined,
    info: () => undefined,
    warn: (m, f) => void lines.push(`${m} ${JSON.stringify(f ?? {})}`),
    error: (m, f) => void lines.push(`${m} ${JSON.stringify(f ?? {})}`),
    child: () => l,
  };
  return l;
}

export interface TestRuntime {
  ctx: RuntimeContext;
  faults: Faults;
  tasks: FakeTasks;
  cni: FakeNetwork;
  pods: FakePods;
  snapshots: FakeSnapshots;
  images: FakeImages;
  clock: ManualClock;
  warnings: string[];
  dir: string;
}

export async function newTestContext(t: TestContext): Promise<TestRuntime> {
  const dir = await tempDir(t, 'berth-flow-');
  const db = openMetadata(join(dir, 'meta.db'));
  t.after(() => db.close());
  const faults = new Faults();
  const tasks = new FakeTasks(faults);
  const cni = new FakeNetwork(faults);
  const pods = new FakePods(faults);
  const snapshots = new FakeSnapshots(faults);
  const images = new FakeImages(faults);
  images.add(SANDBOX_IMAGE);
  const clock = new ManualClock();
  const warnings: string[] = [];
  const ctx: RuntimeContext = {
    settings: {
      root: join(dir, 'root'),
      state: join(dir, 'state'),
      sandboxImage: SANDBOX_IMAGE,
      defaultRuntime: 'runc',
      runtimes: { runc: { type: 'io.containerd.berth.v1' } as RuntimeContext['settings']['runtimes'][string] },
      netnsDir: join(dir, 'state', 'netns'),
    },
    log: recordingLogger(warnings),
    images,
    sandboxes: new SandboxStore(db),
    containers: new ContainerStore(db),
    names: new NameStore(db),
    snapshotter: snapshots,
    cni,
    pods,
    tasks,
    streaming: {
      getExec: () => Promise.reject(new Error('no streaming in unit tests')),
      getAttach: () => Promise.reject(new Error('no streaming in unit tests')),
      getPortForward: () => Promise.reject(new Error('no streaming in unit tests')),
    } as unknown as RuntimeContext['streaming'],
    events: new ContainerEventBus(),
    tracer: new Tracer(),
    locks: new KeyedLock(),
    cdi: { resolve: async () => [] },
    clock,
    ...newHandlerState(snapshots),
  };
  return { ctx, faults, tasks, cni, pods, snapshots, images, clock, warnings, dir };
}

/**
 * A running container of `sandboxId` put into the metadata store, with a started fake task:
 * what CreateContainer + StartContainer leave, for flows that begin with a running container.
 */
export async function putRunningContainer(rt: TestRuntime, ns: string, id: string, sandboxId: string): Promise<ContainerRecord> {
  await rt.tasks.create({ namespace: ns, id, runtime: 'runc', spec: {} });
  await rt.tasks.start(ns, id);
  const c = runningContainerRecord(id, sandboxId);
  rt.ctx.containers.put(ns, c);
  return c;
}

/** The record of a running busybox container `id` of `sandboxId` (fields in `over` replace the defaults). */
export function runningContainerRecord(id: string, sandboxId: string, over: Partial<ContainerRecord> = {}): ContainerRecord {
  return {
    id,
    sandboxId,
    name: 'k8s_app',
    meta: { name: 'app', attempt: 0 },
    state: 'running',
    createdAt: '1',
    image: 'busybox',
    imageId: 'sha256:x',
    imageRef: 'sha256:x',
    config: '',
    labels: {},
    annotations: {},
    logPath: '',
    snapshotKey: id,
    extra: {},
    ...over,
  };
}
