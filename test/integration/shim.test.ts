/**
 * berth-shim against real conmon and runc: started through its `start` command, driven over
 * ttrpc with the containerd.task.v2.Task API, events captured by a ttrpc Events/Forward server
 * given as TTRPC_ADDRESS. Needs root, conmon and runc; cgroup files are found for v1, hybrid and v2 hosts (helpers/cgroup.ts).
 */
import { test, describe, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  constants as fsConstants,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readSync,
  closeSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { create, fromBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { AnySchema } from '@bufbuild/protobuf/wkt';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import { TtrpcClient, TtrpcServer, createClient, registerService, type ServiceClient } from '../../src/ttrpc/index.js';
import { Task, DeleteResponseSchema } from '../../src/api/containerd/runtime/v2/task/shim_pb.js';
import { Status } from '../../src/api/containerd/types/task/task_pb.js';
import { Events } from '../../src/api/containerd/services/ttrpc/events/v1/events_pb.js';
import * as Ev from '../../src/api/containerd/events/task_pb.js';
import * as V1 from '../../src/api/cgroups/stats/v1/metrics_pb.js';
import * as V2 from '../../src/api/cgroups/cgroup2/stats/metrics_pb.js';
import { isBerthError, type ErrorKind } from '../../src/errors.js';
import { makeBundle, rootfsTemplate, type Bundle, type BundleOptions } from '../helpers/bundle.js';
import { hostHierarchy, knobFileOfPath, readKnobOfPath, readProcs, removeCgroupTreeSettled } from '../helpers/cgroup.js';
import { ended, until } from '../helpers/process.js';

const repo = resolve(import.meta.dirname, '../..', existsSync(resolve(import.meta.dirname, '../../package.json')) ? '' : '..');
const SHIM_BIN = process.env.BERTH_SHIM_BIN ?? join(repo, 'bin/berth-shim');
const RPC_TIMEOUT = 20_000;

type TaskClient = ServiceClient<typeof Task extends GenService<infer S extends GenServiceMethods> ? S : never>;

interface Envelope {
  topic: string;
  typeUrl: string;
  value: Uint8Array;
}

class Harness {
  readonly tmp = mkdtempSync('/tmp/bshim-');
  readonly ns = `bt-${randomBytes(3).toString('hex')}`;
  readonly cgroupParent = `/berth-test-${randomBytes(3).toString('hex')}`;
  readonly stateDir = join(this.tmp, 's');
  readonly runcRoot = join(this.tmp, 'runc');
  readonly events: Envelope[] = [];
  private eventWaiters: Array<() => void> = [];
  private readonly eventServer = new TtrpcServer();
  readonly eventsSock = join(this.tmp, 'events.sock');
  readonly bundles: Bundle[] = [];
  readonly shimPids = new Set<number>();
  private readonly clients = new Map<string, { client: TtrpcClient; task: TaskClient }>();

  async init(): Promise<void> {
    registerService(this.eventServer, Events, {
      forward: (req) => {
        const e = req.envelope;
        if (e?.event) this.events.push({ topic: e.topic, typeUrl: e.event.typeUrl, value: e.event.value });
        for (const w of this.eventWaiters.splice(0)) w();
        return {};
      },
    });
    await this.eventServer.listen(this.eventsSock);
  }

  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    const e: NodeJS.ProcessEnv = {
      ...process.env,
      BERTH_SHIM_STATE_DIR: this.stateDir,
      BERTH_RUNC_ROOT: this.runcRoot,
      TTRPC_ADDRESS: this.eventsSock,
      ...extra,
    };
    if (extra.TTRPC_ADDRESS === '') delete e.TTRPC_ADDRESS;
    return e;
  }

  /** `berth-shim start` for a bundle; returns the socket path. */
  start(b: Bundle, env: Record<string, string> = {}, extraArgs: string[] = [], ns = this.ns): string {
    const r = spawnSync(process.execPath, [SHIM_BIN, '-namespace', ns, '-address', '/run/berth/berthd.sock', ...extraArgs, '-id', b.id, 'start'], {
      cwd: b.dir,
      env: this.env(env),
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(r.status, 0, `start failed: ${r.stderr}`);
    assert.match(r.stdout, /^unix:\/\//);
    assert.equal(readFileSync(join(b.dir, 'address'), 'utf8'), r.stdout);
    const pid = Number(readFileSync(join(b.dir, 'shim.pid'), 'utf8'));
    this.shimPids.add(pid);
    return r.stdout.slice('unix://'.length);
  }

  async task(sock: string): Promise<TaskClient> {
    const have = this.clients.get(sock);
    if (have && have.client.isOpen) return have.task;
    const client = await TtrpcClient.connect(sock, { defaultTimeoutMs: RPC_TIMEOUT });
    const task = createClient(Task, client);
    this.clients.set(sock, { client, task });
    return task;
  }

  bundle(id: string, o: Omit<BundleOptions, 'cgroupParent'>): Bundle {
    const b = makeBundle(join(this.tmp, 'bundles'), id, { ...o, cgroupParent: this.cgroupParent });
    this.bundles.push(b);
    return b;
  }

  fifo(name: string): string {
    const p = join(this.tmp, name);
    execFileSync('mkfifo', [p]);
    return p;
  }

  /** Wait until an event matching `pred` has arrived. */
  async event<D extends DescMessage>(topic: string, schema: D, pred: (m: MessageShape<D>) => boolean, timeoutMs = 15_000): Promise<MessageShape<D>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const e of this.events) {
        if (e.topic !== topic) continue;
        assert.equal(e.typeUrl, schema.typeName);
        const m = fromBinary(schema, e.value);
        if (pred(m)) return m;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${topic} event within ${timeoutMs} ms; got ${this.events.map((e) => e.topic).join(',')}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        this.eventWaiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  async cleanup(): Promise<void> {
    for (const { client } of this.clients.values()) client.close();
    // Every container this run created, whatever state the test left it in.
    const nsRoot = join(this.runcRoot, this.ns);
    if (existsSync(nsRoot)) {
      for (const id of execFileSync('ls', [nsRoot], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
        spawnSync('runc', ['--root', nsRoot, 'delete', '--force', id]);
      }
    }
    for (const pid of this.shimPids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    // Monitors outlive shims by design: this run's conmons name its temp dir.
    spawnSync('pkill', ['-KILL', '-f', this.tmp], { stdio: 'ignore' });
    for (const b of this.bundles) spawnSync('umount', [join(b.dir, 'rootfs')]);
    await this.eventServer.shutdown();
    await removeCgroupTreeSettled(this.cgroupParent);
    rmSync(this.tmp, { recursive: true, force: true });
  }
}

/**
 * Collects what arrives on a FIFO. Opened O_RDWR|O_NONBLOCK so neither side ever blocks (and
 * no libuv threadpool thread is parked in a blocking open/read); a socket reads it as data
 * comes, so a writer never finds the pipe full. Holding a write end means no EOF ever comes:
 * call text() after Wait, by when the shim has copied all output into the FIFO (it drains
 * before reporting exits). text() then stops the socket and reads what is still in the pipe
 * through a second, non-blocking read end until the pipe is empty: no quiet period to wait out.
 */
class FifoReader {
  private readonly chunks: Buffer[] = [];
  private readonly sock: net.Socket;
  private readonly rest: number;
  private closed = false;

  constructor(path: string) {
    this.rest = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    const fd = openSync(path, fsConstants.O_RDWR | fsConstants.O_NONBLOCK);
    this.sock = new net.Socket({ fd, readable: true, writable: false });
    this.sock.on('data', (d: Buffer) => this.chunks.push(d));
    this.sock.on('error', () => undefined);
  }

  text(): string {
    // Whatever the socket has read is in chunks already (its reads run on this thread).
    this.sock.destroy();
    const buf = Buffer.alloc(65536);
    for (;;) {
      let n: number;
      try {
        n = readSync(this.rest, buf);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') break;
        throw err;
      }
      if (n === 0) break;
      this.chunks.push(Buffer.from(buf.subarray(0, n)));
    }
    this.close();
    return Buffer.concat(this.chunks).toString('utf8');
  }

  close(): void {
    this.sock.destroy();
    if (this.closed) return;
    this.closed = true;
    closeSync(this.rest);
  }
}

/** A FifoReader closed when the test ends, whatever happens. */
function readAll(t: TestContext, path: string): FifoReader {
  const r = new FifoReader(path);
  t.after(() => r.close());
  return r;
}

function rejectsWith(kind: ErrorKind, re?: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(isBerthError(e), `not a BerthError: ${String(e)}`);
    assert.equal(e.kind, kind, `kind ${e.kind}: ${e.message}`);
    if (re) assert.match(e.message, re);
    return true;
  };
}

function processSpec(args: string[], terminal = false): { typeUrl: string; value: Uint8Array } {
  const spec = { args, env: ['PATH=/bin'], cwd: '/', terminal, user: { uid: 0, gid: 0 } };
  return create(AnySchema, {
    typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/Process',
    value: Buffer.from(JSON.stringify(spec)),
  });
}

const T = { timeout: 40_000 };
const isRoot = process.getuid?.() === 0;

function isMountpoint(path: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === path);
}

describe('berth-shim with real runc', { skip: !isRoot && 'needs root' }, () => {
  const h = new Harness();
  let sock = '';
  let task: TaskClient;
  const GROUP = {};

  before(async () => {
    await h.init();
    const first = h.bundle('boot', { args: ['true'] });
    sock = h.start(first, GROUP);
    task = await h.task(sock);
  });

  after(async () => {
    await h.cleanup();
  });

  /** Kill and delete a container if a test left it behind (registered by run()). */
  async function discard(id: string): Promise<void> {
    try {
      const st = await task.state({ id });
      if (st.status === Status.RUNNING || st.status === Status.PAUSED || st.status === Status.CREATED) {
        await task.kill({ id, signal: 9, all: true }).catch(() => undefined);
        if (st.status !== Status.CREATED) await task.wait({ id }, { timeoutMs: 10_000 }).catch(() => undefined);
      }
      await task.delete({ id });
    } catch {
      // already gone
    }
  }

  /**
   * Create (+ start) a container whose stdout/stderr go to FIFOs. The readers are opened
   * before Create, as containerd clients do: a FIFO's data is lost if its last writer closes
   * while nobody has it open for reading.
   */
  async function run(
    t: TestContext,
    id: string,
    o: Omit<BundleOptions, 'cgroupParent'>,
    startIt = true,
  ): Promise<{ b: Bundle; stdout: FifoReader; stderr: FifoReader; pid: number }> {
    const b = h.bundle(id, o);
    const out = h.fifo(`${id}.out`);
    const err = h.fifo(`${id}.err`);
    const stdout = readAll(t, out);
    const stderr = readAll(t, err);
    t.after(async () => {
      await discard(id);
    });
    const r = await task.create({ id, bundle: b.dir, stdout: out, stderr: err, terminal: o.terminal ?? false });
    assert.ok(r.pid > 0);
    if (startIt) await task.start({ id });
    return { b, stdout, stderr, pid: r.pid };
  }

  test('echo hi: output arrives on the stdout FIFO and the exit is reported', T, async (t) => {
    const { stdout: text, pid } = await run(t, 'echo', { args: ['echo', 'hi'] });
    const w = await task.wait({ id: 'echo' });
    assert.equal(w.exitStatus, 0);
    assert.equal(text.text(), 'hi\n');
    const exit = await h.event('/tasks/exit', Ev.TaskExitSchema, (m) => m.containerId === 'echo');
    assert.equal(exit.pid, pid);
    assert.equal(exit.exitStatus, 0);
    await h.event('/tasks/create', Ev.TaskCreateSchema, (m) => m.containerId === 'echo' && m.pid === pid);
    await h.event('/tasks/start', Ev.TaskStartSchema, (m) => m.containerId === 'echo');
    const st = await task.state({ id: 'echo' });
    assert.equal(st.status, Status.STOPPED);
    const d = await task.delete({ id: 'echo' });
    assert.equal(d.exitStatus, 0);
    assert.equal(d.pid, pid);
    await h.event('/tasks/delete', Ev.TaskDeleteSchema, (m) => m.containerId === 'echo');
    await assert.rejects(task.state({ id: 'echo' }), rejectsWith('NotFound'));
  });

  test("in a shared pid namespace, the exit of init kills the container's other processes", T, async (t) => {
    const { pid: podPid } = await run(t, 'pidpod', { args: ['sleep', '1000'] });
    const { b } = await run(t, 'pidjoin', { args: ['sh', '-c', 'sleep 1000 & exit 3'], pidNsPath: `/proc/${podPid}/ns/pid` });
    assert.equal((await task.wait({ id: 'pidjoin' })).exitStatus, 3);
    // SIGKILL is sent before the exit is reported; the process leaves its cgroup a moment later.
    const procsFile = knobFileOfPath(b.cgroupsPath, 'procs');
    const deadline = Date.now() + 5000;
    while (readProcs(procsFile).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(readProcs(procsFile), [], 'the background sleep was killed with its container');
  });

  test('exit code 7 is reported by Wait, State and Delete', T, async (t) => {
    await run(t, 'exit7', { args: ['sh', '-c', 'exit 7'] });
    assert.equal((await task.wait({ id: 'exit7' })).exitStatus, 7);
    const st = await task.state({ id: 'exit7' });
    assert.equal(st.exitStatus, 7);
    assert.ok(st.exitedAt);
    assert.equal((await task.delete({ id: 'exit7' })).exitStatus, 7);
  });

  test('Kill with SIGTERM stops the container; killing it again says NotFound', T, async (t) => {
    const { b } = await run(t, 'term', { args: ['sh', '-c', 'trap "exit 143" TERM; touch /trapped; while true; do sleep 0.1; done'] });
    await until(() => existsSync(join(b.rootfs, 'trapped')), 'the TERM trap to be installed');
    await task.kill({ id: 'term', signal: 15 });
    assert.equal((await task.wait({ id: 'term' })).exitStatus, 143);
    await assert.rejects(task.kill({ id: 'term', signal: 9 }), rejectsWith('NotFound'));
    await task.delete({ id: 'term' });
  });

  test('invalid transitions are rejected with FailedPrecondition', T, async (t) => {
    await run(t, 'trans', { args: ['sleep', '1000'] }, false);
    await assert.rejects(task.resume({ id: 'trans' }), rejectsWith('FailedPrecondition'));
    await task.start({ id: 'trans' });
    await assert.rejects(task.start({ id: 'trans' }), rejectsWith('FailedPrecondition'));
    await assert.rejects(task.delete({ id: 'trans' }), rejectsWith('FailedPrecondition'));
    await assert.rejects(task.create({ id: 'trans', bundle: '/nonexistent' }), rejectsWith('AlreadyExists'));
    await task.kill({ id: 'trans', signal: 9 });
    assert.equal((await task.wait({ id: 'trans' })).exitStatus, 137);
    await task.delete({ id: 'trans' });
  });

  test('a created container that is never started can be deleted', T, async (t) => {
    await run(t, 'unstarted', { args: ['sleep', '1000'] }, false);
    assert.equal((await task.state({ id: 'unstarted' })).status, Status.CREATED);
    await task.delete({ id: 'unstarted' });
    await assert.rejects(task.state({ id: 'unstarted' }), rejectsWith('NotFound'));
  });

  test('Start of a created container whose init was killed fails with FailedPrecondition instead of waiting', T, async (t) => {
    const { pid } = await run(t, 'deadinit', { args: ['sleep', '1000'] }, false);
    process.kill(pid, 'SIGKILL');
    await assert.rejects(task.start({ id: 'deadinit' }), rejectsWith('FailedPrecondition'));
    assert.equal((await task.wait({ id: 'deadinit' })).exitStatus, 137);
    await task.delete({ id: 'deadinit' });
  });

  test('runc errors reach the caller verbatim', T, async () => {
    const b = h.bundle('badexec', { args: ['/no/such/binary'] });
    await assert.rejects(task.create({ id: 'badexec', bundle: b.dir }), rejectsWith('Internal', /no such file or directory/));
    await assert.rejects(task.state({ id: 'badexec' }), rejectsWith('NotFound'));
    await assert.rejects(task.start({ id: 'nope' }), rejectsWith('NotFound'));
  });

  test('exec into a running container: output, exit code, events', T, async (t) => {
    await run(t, 'execbox', { args: ['sleep', '1000'] });
    const out = h.fifo('exec1.out');
    const text = readAll(t, out);
    await task.exec({ id: 'execbox', execId: 'e1', stdout: out, spec: processSpec(['sh', '-c', 'echo from-exec; exit 3']) });
    await h.event('/tasks/exec-added', Ev.TaskExecAddedSchema, (m) => m.execId === 'e1');
    assert.equal((await task.state({ id: 'execbox', execId: 'e1' })).status, Status.CREATED);
    const s = await task.start({ id: 'execbox', execId: 'e1' });
    assert.ok(s.pid > 0);
    const w = await task.wait({ id: 'execbox', execId: 'e1' });
    assert.equal(w.exitStatus, 3);
    assert.equal(text.text(), 'from-exec\n');
    await h.event('/tasks/exec-started', Ev.TaskExecStartedSchema, (m) => m.execId === 'e1' && m.pid === s.pid);
    const ex = await h.event('/tasks/exit', Ev.TaskExitSchema, (m) => m.id === 'e1');
    assert.equal(ex.exitStatus, 3);
    assert.equal((await task.delete({ id: 'execbox', execId: 'e1' })).exitStatus, 3);
    await assert.rejects(task.state({ id: 'execbox', execId: 'e1' }), rejectsWith('NotFound'));
    // Stdin reaches the exec and CloseIO ends it.
    const inF = h.fifo('exec2.in');
    const out2 = h.fifo('exec2.out');
    const text2 = readAll(t, out2);
    await task.exec({ id: 'execbox', execId: 'e2', stdin: inF, stdout: out2, spec: processSpec(['cat']) });
    await task.start({ id: 'execbox', execId: 'e2' });
    writeFileSync(inF, 'via-stdin\n');
    await task.closeIO({ id: 'execbox', execId: 'e2', stdin: true });
    assert.equal((await task.wait({ id: 'execbox', execId: 'e2' })).exitStatus, 0);
    assert.equal(text2.text(), 'via-stdin\n');
    await task.delete({ id: 'execbox', execId: 'e2' });
    await task.kill({ id: 'execbox', signal: 9 });
    await task.wait({ id: 'execbox' });
    await task.delete({ id: 'execbox' });
  });

  test('pause and resume change State and publish events; Pids lists the init pid', T, async (t) => {
    const { pid } = await run(t, 'pausebox', { args: ['sleep', '1000'] });
    const pids = await task.pids({ id: 'pausebox' });
    assert.ok(
      pids.processes.some((p) => p.pid === pid),
      `init pid ${pid} missing from ${pids.processes.map((p) => p.pid).join(',')}`,
    );
    await task.pause({ id: 'pausebox' });
    assert.equal((await task.state({ id: 'pausebox' })).status, Status.PAUSED);
    await h.event('/tasks/paused', Ev.TaskPausedSchema, (m) => m.containerId === 'pausebox');
    await assert.rejects(task.pause({ id: 'pausebox' }), rejectsWith('FailedPrecondition'));
    await task.resume({ id: 'pausebox' });
    assert.equal((await task.state({ id: 'pausebox' })).status, Status.RUNNING);
    await h.event('/tasks/resumed', Ev.TaskResumedSchema, (m) => m.containerId === 'pausebox');
    await task.kill({ id: 'pausebox', signal: 9 });
    await task.wait({ id: 'pausebox' });
    await task.delete({ id: 'pausebox' });
  });

  test(`Stats returns the host's cgroup ${hostHierarchy()} metrics and Update changes the memory limit`, T, async (t) => {
    const { b } = await run(t, 'statbox', { args: ['sh', '-c', 'while true; do sleep 0.2; done'] });
    const r = await task.stats({ id: 'statbox' });
    if (hostHierarchy() === 'v1') {
      assert.equal(r.stats?.typeUrl, 'io.containerd.cgroups.v1.Metrics');
      const m = fromBinary(V1.MetricsSchema, r.stats?.value ?? new Uint8Array());
      assert.ok((m.memory?.usage?.usage ?? 0n) > 0n, 'memory usage > 0');
      assert.ok((m.pids?.current ?? 0n) >= 1n);
    } else {
      assert.equal(r.stats?.typeUrl, 'io.containerd.cgroups.v2.Metrics');
      const m = fromBinary(V2.MetricsSchema, r.stats?.value ?? new Uint8Array());
      assert.ok((m.memory?.usage ?? 0n) > 0n, 'memory usage > 0');
      assert.ok((m.pids?.current ?? 0n) >= 1n);
    }
    const limit = 48 * 1024 * 1024;
    await task.update({
      id: 'statbox',
      resources: create(AnySchema, {
        typeUrl: 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources',
        value: Buffer.from(JSON.stringify({ memory: { limit, swap: limit } })),
      }),
    });
    assert.equal(readKnobOfPath(b.cgroupsPath, 'memoryLimit'), BigInt(limit), `${hostHierarchy()} memory limit of the container's cgroup`);
    await task.kill({ id: 'statbox', signal: 9 });
    await task.wait({ id: 'statbox' });
    await task.delete({ id: 'statbox' });
  });

  test('a container over its memory limit is OOM-killed: TaskOOM then exit 137', T, async (t) => {
    const mib = 1024 * 1024;
    // tail keeps the current (newline-free, ever growing) line in memory until it is killed;
    // sh -c exits with the pipeline's status: 137.
    await run(t, 'oombox', { args: ['sh', '-c', 'dd if=/dev/zero bs=1M count=64 2>/dev/null | tail'], memoryLimit: 16 * mib });
    const w = await task.wait({ id: 'oombox' });
    assert.equal(w.exitStatus, 137);
    await h.event('/tasks/oom', Ev.TaskOOMSchema, (m) => m.containerId === 'oombox');
    await h.event('/tasks/exit', Ev.TaskExitSchema, (m) => m.containerId === 'oombox');
    const oomAt = h.events.findIndex((e) => e.topic === '/tasks/oom');
    const exitAt = h.events.findIndex((e) => e.topic === '/tasks/exit' && fromBinary(Ev.TaskExitSchema, e.value).containerId === 'oombox');
    assert.ok(oomAt >= 0 && oomAt < exitAt, 'TaskOOM precedes TaskExit');
    await task.delete({ id: 'oombox' });
  });

  test('CRI containers get the CRI log format, long lines split into P records', T, async (t) => {
    const log = join(h.tmp, 'cri.log');
    const b = h.bundle('crilog', {
      args: ['sh', '-c', 'echo out-line; echo err-line >&2; head -c 20000 /dev/zero | tr "\\0" x; echo; printf tail-no-newline'],
      annotations: { 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.sandbox-id': 'sb1' },
    });
    t.after(() => discard('crilog'));
    await task.create({ id: 'crilog', bundle: b.dir, stdout: `file://${log}`, stderr: `file://${log}` });
    await task.start({ id: 'crilog' });
    assert.equal((await task.wait({ id: 'crilog' })).exitStatus, 0);
    const lines = readFileSync(log, 'utf8').split('\n');
    assert.equal(lines.pop(), '');
    // RFC 3339 with nanoseconds; conmon writes a numeric offset (+00:00), kubelet parses both.
    const re = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)) (stdout|stderr) ([PF]) (.*)$/;
    const recs = lines.map((l) => {
      const m = re.exec(l);
      assert.ok(m, `bad CRI line ${JSON.stringify(l.slice(0, 80))}`);
      return { stream: m[2], tag: m[3], msg: m[4] ?? '' };
    });
    assert.deepEqual(
      recs.find((r) => r.msg === 'out-line'),
      { stream: 'stdout', tag: 'F', msg: 'out-line' },
    );
    assert.deepEqual(
      recs.find((r) => r.msg === 'err-line'),
      { stream: 'stderr', tag: 'F', msg: 'err-line' },
    );
    // A long line is split into P records ending with one F record (maybe empty), nothing lost.
    const first = recs.findIndex((r) => /^x+$/.test(r.msg));
    const end = recs.findIndex((r, i) => i >= first && r.stream === 'stdout' && r.tag === 'F');
    const xs = recs.slice(first, end + 1).filter((r) => r.stream === 'stdout');
    assert.ok(first >= 0 && xs.length >= 2, 'the 20000-byte line is split');
    assert.deepEqual(
      xs.map((r) => r.tag),
      [...xs.slice(0, -1).map(() => 'P'), 'F'],
    );
    assert.equal(xs.map((r) => r.msg).join(''), 'x'.repeat(20000));
    // An unterminated tail stays a P record (conmon, as with CRI-O); its text is all there.
    assert.deepEqual({ ...recs.at(-1), tag: undefined }, { stream: 'stdout', tag: undefined, msg: 'tail-no-newline' });
    await task.delete({ id: 'crilog' });
  });

  test('terminal containers: the pty is resized and its output copied', T, async (t) => {
    const b = h.bundle('ttybox', { args: ['sh', '-c', 'sleep 0.5; stty size'], terminal: true });
    const out = h.fifo('ttybox.out');
    const text = readAll(t, out);
    t.after(() => discard('ttybox'));
    await task.create({ id: 'ttybox', bundle: b.dir, stdout: out, terminal: true });
    await task.resizePty({ id: 'ttybox', width: 100, height: 40 });
    await task.start({ id: 'ttybox' });
    assert.equal((await task.wait({ id: 'ttybox' })).exitStatus, 0);
    assert.match(text.text(), /40 100\r?\n/);
    await task.delete({ id: 'ttybox' });
  });

  test('exec with a terminal: ResizePty addresses the exec and its pty output is copied', T, async (t) => {
    await run(t, 'ttyexec', { args: ['sleep', '1000'] });
    const out = h.fifo('ttyexec-e1.out');
    const text = readAll(t, out);
    await task.exec({
      id: 'ttyexec',
      execId: 'e1',
      terminal: true,
      stdout: out,
      spec: processSpec(
        ['sh', '-c', 'i=0; s0=$(stty size); while [ "$(stty size)" = "$s0" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; stty size'],
        true,
      ),
    });
    await assert.rejects(task.resizePty({ id: 'ttyexec', width: 10, height: 10 }), rejectsWith('FailedPrecondition'));
    await task.start({ id: 'ttyexec', execId: 'e1' });
    await task.resizePty({ id: 'ttyexec', execId: 'e1', width: 77, height: 33 });
    assert.equal((await task.wait({ id: 'ttyexec', execId: 'e1' })).exitStatus, 0);
    assert.match(text.text(), /33 77\r?\n/);
    await task.delete({ id: 'ttyexec', execId: 'e1' });
  });

  test('Checkpoint: an image where CRIU works here, else a failure carrying runc and criu error text', T, async (t) => {
    await run(t, 'ckpt', { args: ['sleep', '1000'] });
    // The host decides which must happen (criu 3.17 fails `criu check` on some kernels).
    const criuWorks = spawnSync('criu', ['check'], { stdio: 'ignore' }).status === 0;
    const image = join(h.tmp, 'ckpt-image');
    if (criuWorks) {
      await task.checkpoint({ id: 'ckpt', path: image });
      assert.ok(
        readdirSync(image).some((f) => f.endsWith('.img')),
        'CRIU wrote its image files',
      );
    } else {
      await assert.rejects(task.checkpoint({ id: 'ckpt', path: image }), (e: unknown) => {
        assert.ok(isBerthError(e));
        assert.equal(e.kind, 'FailedPrecondition');
        assert.match(e.message, /runc checkpoint: .*criu/i);
        return true;
      });
    }
    await task.kill({ id: 'ckpt', signal: 9 });
    await task.wait({ id: 'ckpt' });
    await task.delete({ id: 'ckpt' });
  });

  test('rootfs Mounts are mounted before runc create and unmounted by Delete', T, async (t) => {
    const lower = join(h.tmp, 'bind-src');
    cpSync(rootfsTemplate(), lower, { recursive: true, verbatimSymlinks: true });
    writeFileSync(join(lower, 'marker'), 'from-mount\n');
    const b = h.bundle('mounted', { args: ['cat', '/marker'], emptyRootfs: true });
    const out = h.fifo('mounted.out');
    const text = readAll(t, out);
    t.after(() => discard('mounted'));
    await task.create({ id: 'mounted', bundle: b.dir, stdout: out, rootfs: [{ type: 'bind', source: lower, options: ['rbind'] }] });
    assert.ok(isMountpoint(b.rootfs), 'rootfs mounted after Create');
    await task.start({ id: 'mounted' });
    assert.equal((await task.wait({ id: 'mounted' })).exitStatus, 0);
    assert.equal(text.text(), 'from-mount\n');
    await task.delete({ id: 'mounted' });
    assert.equal(isMountpoint(b.rootfs), false, 'rootfs unmounted after Delete');
  });

  test('process.oomScoreAdj: applied as asked where CAP_SYS_RESOURCE allows it, else clamped instead of failing runc', T, async (t) => {
    const { b, stdout } = await run(t, 'oomadj', { args: ['cat', '/proc/self/oom_score_adj'], oomScoreAdj: -900 });
    assert.equal((await task.wait({ id: 'oomadj' })).exitStatus, 0);
    // What the host allows decides what must happen: with CAP_SYS_RESOURCE any value; without,
    // nothing below what runc starts with (conmon resets it to 0, or keeps a higher own value).
    const status = readFileSync('/proc/self/status', 'utf8');
    const canLower = ((BigInt(`0x${/^CapEff:\s*([0-9a-f]+)$/m.exec(status)![1]}`) >> 24n) & 1n) === 1n;
    const own = Number(readFileSync('/proc/self/oom_score_adj', 'utf8'));
    const want = canLower ? -900 : Math.max(own, 0);
    const cfg = JSON.parse(readFileSync(join(b.dir, 'config.json'), 'utf8')) as { process: { oomScoreAdj: number } };
    assert.equal(cfg.process.oomScoreAdj, want);
    assert.equal(Number(stdout.text().trim()), want, 'the container really runs with it');
  });

  test('Update with the reopen-log annotation makes the CRI log continue in a new file', T, async (t) => {
    const log = join(h.tmp, 'rotate.log');
    const b = h.bundle('rotate', {
      args: ['sh', '-c', 'echo before; while [ ! -e /gate ]; do sleep 0.05; done; echo after'],
      annotations: { 'io.kubernetes.cri.container-type': 'container' },
    });
    t.after(() => discard('rotate'));
    await task.create({ id: 'rotate', bundle: b.dir, stdout: `file://${log}`, stderr: `file://${log}` });
    await task.start({ id: 'rotate' });
    const deadline = Date.now() + 5000;
    while (!(existsSync(log) && readFileSync(log, 'utf8').includes('before')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    renameSync(log, `${log}.1`);
    await task.update({ id: 'rotate', annotations: { 'io.berth.shim.reopen-log': 'true' } });
    writeFileSync(join(b.rootfs, 'gate'), '');
    assert.equal((await task.wait({ id: 'rotate' })).exitStatus, 0);
    assert.match(readFileSync(`${log}.1`, 'utf8'), / stdout F before\n$/);
    assert.match(readFileSync(log, 'utf8'), /^\S+ stdout F after\n$/);
  });

  test('without TTRPC_ADDRESS events are published by exec-ing the publish binary', T, async () => {
    const record = join(h.tmp, 'published');
    mkdirSync(record);
    const script = join(h.tmp, 'fake-publish');
    writeFileSync(script, `#!/bin/sh\nn=$(ls ${record} | wc -l)\necho "$@" > ${record}/$n.args\ncat > ${record}/$n.bin\n`, { mode: 0o755 });
    const b = h.bundle('pubbox', { args: ['true'] });
    const pubNs = `${h.ns}-pub`;
    const s = h.start(b, { TTRPC_ADDRESS: '' }, ['-publish-binary', script], pubNs);
    const pt = await h.task(s);
    await pt.create({ id: 'pubbox', bundle: b.dir });
    await pt.start({ id: 'pubbox' });
    await pt.wait({ id: 'pubbox' });
    await pt.delete({ id: 'pubbox' });
    await pt.shutdown({ id: '' });
    const deadline = Date.now() + 5000;
    while (readdirSync(record).filter((f) => f.endsWith('.bin')).length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const args = readFileSync(join(record, '0.args'), 'utf8').trim();
    assert.equal(args, `--address /run/berth/berthd.sock publish --topic /tasks/create --namespace ${pubNs}`);
    const any = fromBinary(AnySchema, readFileSync(join(record, '0.bin')));
    assert.equal(any.typeUrl, 'containerd.events.TaskCreate');
    assert.equal(fromBinary(Ev.TaskCreateSchema, any.value).containerId, 'pubbox');
  });

  test('a Create whose id runc already knows fails with AlreadyExists and leaves that container alone', T, async (t) => {
    await run(t, 'dupid', { args: ['sleep', '1000'] });
    const other = h.bundle('dupid-other', { args: ['true'] });
    const s = h.start(other);
    assert.equal(s, sock, 'the namespace has one shim');
    const ot = await h.task(s);
    await assert.rejects(ot.create({ id: 'dupid', bundle: other.dir }), rejectsWith('AlreadyExists', /already exists/));
    assert.equal((await task.state({ id: 'dupid' })).status, Status.RUNNING);
    const st = spawnSync('runc', ['--root', join(h.runcRoot, h.ns), 'state', 'dupid'], { encoding: 'utf8' });
    assert.equal(st.status, 0, st.stderr);
  });

  test('binary:// logging is refused with InvalidArgument (berth-shim takes FIFOs and file://)', T, async (t) => {
    const b = h.bundle('binlog', { args: ['echo', 'to-logger'] });
    t.after(() => discard('binlog'));
    const uri = 'binary:///usr/bin/logger?x';
    await assert.rejects(task.create({ id: 'binlog', bundle: b.dir, stdout: uri, stderr: uri }), rejectsWith('InvalidArgument', /binary/));
    await assert.rejects(task.state({ id: 'binlog' }), rejectsWith('NotFound'));
  });

  test('Connect reports the shim pid', T, async () => {
    const r = await task.connect({ id: 'none' });
    assert.ok(h.shimPids.has(r.shimPid));
  });

  test('start returns the one shim of the namespace for every container, and another for another namespace', T, async () => {
    const a = h.bundle('g-a', { args: ['true'], annotations: { 'io.kubernetes.cri.sandbox-id': 'podA' } });
    const b = h.bundle('g-b', { args: ['true'], annotations: { 'io.kubernetes.cri.sandbox-id': 'podB' } });
    assert.equal(h.start(a), sock);
    assert.equal(h.start(b), sock);
    const other = h.start(a, {}, [], `${h.ns}-other`);
    assert.notEqual(other, sock);
    await (await h.task(other)).shutdown({ id: '' });
  });

  test('delete command cleans up a container whose shim is gone', T, async () => {
    const b = h.bundle('orphan', { args: ['sleep', '1000'] });
    const orphanNs = `${h.ns}-orphan`;
    const s = h.start(b, {}, [], orphanNs);
    const orphanTask = await h.task(s);
    const created = await orphanTask.create({ id: 'orphan', bundle: b.dir });
    await orphanTask.start({ id: 'orphan' });
    const shimPid = Number(readFileSync(join(b.dir, 'shim.pid'), 'utf8'));
    process.kill(shimPid, 'SIGKILL');
    await until(() => ended(shimPid), 'the killed shim to be gone');
    const r = spawnSync(process.execPath, [SHIM_BIN, '-namespace', orphanNs, '-id', 'orphan', '-bundle', b.dir, 'delete'], { env: h.env() });
    assert.equal(r.status, 0, r.stderr.toString());
    const resp = fromBinary(DeleteResponseSchema, r.stdout);
    assert.equal(resp.pid, created.pid);
    assert.equal(resp.exitStatus, 137);
    const st = spawnSync('runc', ['--root', join(h.runcRoot, orphanNs), 'state', 'orphan']);
    assert.notEqual(st.status, 0, 'container still known to runc');
  });

  test('Shutdown with no containers left ends the shim process and removes its socket', T, async (t) => {
    const c = await task.connect({ id: '' });
    // Containers remain: a plain Shutdown keeps the shim.
    await run(t, 'last', { args: ['sleep', '1000'] });
    await task.shutdown({ id: '' });
    // Still serving, not merely alive: a call after the Shutdown is answered by the same shim.
    assert.equal((await task.connect({ id: '' })).shimPid, c.shimPid);
    assert.doesNotThrow(() => process.kill(c.shimPid, 0));
    await task.kill({ id: 'last', signal: 9 });
    await task.wait({ id: 'last' });
    await task.delete({ id: 'last' });
    await task.shutdown({ id: '' });
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      try {
        process.kill(c.shimPid, 0);
      } catch {
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.throws(() => process.kill(c.shimPid, 0), 'shim still running');
    assert.equal(existsSync(sock), false);
  });
});

describe('berth-shim can die: conmon keeps every container, log line and exit', { skip: !isRoot && 'needs root' }, () => {
  const h = new Harness();
  const counter = ['sh', '-c', 'i=0; while true; do echo $i; i=$((i+1)); sleep 0.05; done'];

  before(async () => {
    await h.init();
  });
  after(async () => {
    await h.cleanup();
  });

  /** The numbers a counter container logged, in order (CRI log records, stdout F lines). */
  function numbers(log: string): number[] {
    return readFileSync(log, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(' '))
      .filter((p) => p[1] === 'stdout')
      .map((p) => Number(p[3]));
  }

  test('kill -9 of the shim: no container dies, no log line is lost, an exit meanwhile is reported with its code and time', { timeout: 60_000 }, async () => {
    const ids = ['c1', 'c2', 'c3'];
    const bundles = ids.map((id) => h.bundle(id, { args: counter, annotations: { 'io.kubernetes.cri.container-type': 'container' } }));
    const quitter = h.bundle('quitter', {
      args: ['sh', '-c', 'while [ ! -e /gate ]; do sleep 0.05; done; exit 7'],
      annotations: { 'io.kubernetes.cri.container-type': 'container' },
    });
    let sock = h.start(quitter);
    let task = await h.task(sock);
    const pids = new Map<string, number>();
    for (const [i, b] of [...bundles, quitter].entries()) {
      const id = i < ids.length ? (ids[i] as string) : 'quitter';
      const log = join(h.tmp, `${id}.log`);
      const r = await task.create({ id, bundle: b.dir, stdout: `file://${log}`, stderr: `file://${log}` });
      await task.start({ id });
      pids.set(id, r.pid);
    }
    const logOf = (id: string) => join(h.tmp, `${id}.log`);
    const count = (id: string) => (existsSync(logOf(id)) ? numbers(logOf(id)).length : 0);
    await until(() => ids.every((id) => count(id) >= 10), 'every counter to log 10 lines');
    const shimPid = Number(readFileSync(join(quitter.dir, 'shim.pid'), 'utf8'));
    process.kill(shimPid, 'SIGKILL');
    const killedAt = Date.now();
    await until(() => ended(shimPid), 'the killed shim to be gone');
    // While no shim runs: the quitter exits, the counters keep counting.
    const before = new Map(ids.map((id) => [id, count(id)]));
    writeFileSync(join(quitter.rootfs, 'gate'), '');
    await until(() => ended(pids.get('quitter')!), 'the quitter to exit while no shim runs');
    await until(() => ids.every((id) => count(id) >= before.get(id)! + 10), 'every counter to log 10 more lines while no shim runs');
    h.events.length = 0;
    sock = h.start(quitter);
    const restartedAt = Date.now();
    assert.notEqual(Number(readFileSync(join(quitter.dir, 'shim.pid'), 'utf8')), shimPid, 'a new shim');
    task = await h.task(sock);
    for (const id of ids) {
      const st = await task.state({ id });
      assert.equal(st.status, Status.RUNNING, `${id} still runs`);
      assert.equal(st.pid, pids.get(id), `${id} is the same process`);
    }
    const q = await task.state({ id: 'quitter' });
    assert.equal(q.status, Status.STOPPED);
    assert.equal(q.exitStatus, 7);
    const at = Number(q.exitedAt?.seconds ?? 0n) * 1000 + Math.floor((q.exitedAt?.nanos ?? 0) / 1e6);
    assert.ok(at >= killedAt - 1000 && at <= restartedAt, `exit time ${new Date(at).toISOString()} lies in the gap`);
    const ev = await h.event('/tasks/exit', Ev.TaskExitSchema, (m) => m.containerId === 'quitter');
    assert.equal(ev.exitStatus, 7);
    // Exec, stop and remove work with the new shim.
    const out = h.fifo('c1-exec.out');
    const reader = new FifoReader(out);
    await task.exec({ id: 'c1', execId: 'x1', stdout: out, spec: processSpec(['echo', 'after-restart']) });
    await task.start({ id: 'c1', execId: 'x1' });
    assert.equal((await task.wait({ id: 'c1', execId: 'x1' })).exitStatus, 0);
    assert.equal(reader.text(), 'after-restart\n');
    await task.delete({ id: 'c1', execId: 'x1' });
    for (const id of ids) {
      await task.kill({ id, signal: 9 });
      await task.wait({ id });
    }
    for (const id of ids) {
      const n = numbers(join(h.tmp, `${id}.log`));
      assert.ok(n.length > 20, `${id} logged ${n.length} lines`);
      assert.deepEqual(
        n,
        n.map((_, i) => i),
        `${id}: every line once, in order`,
      );
      await task.delete({ id });
    }
    await task.delete({ id: 'quitter' });
  });

  test('kill -9 of one conmon: only its container exits, with a reason naming the monitor', { timeout: 30_000 }, async () => {
    const a = h.bundle('mon-a', { args: counter });
    const b = h.bundle('mon-b', { args: counter });
    const sock = h.start(a);
    const task = await h.task(sock);
    for (const x of [a, b]) {
      await task.create({ id: x.id, bundle: x.dir });
      await task.start({ id: x.id });
    }
    const conmon = Number(readFileSync(join(a.dir, 'conmon.pid'), 'utf8'));
    assert.ok(
      readFileSync(`/proc/${conmon}/cmdline`, 'utf8').startsWith('/usr/bin/conmon') || readFileSync(`/proc/${conmon}/comm`, 'utf8').trim() === 'conmon',
    );
    process.kill(conmon, 'SIGKILL');
    const ev = await h.event('/tasks/exit', Ev.TaskExitSchema, (m) => m.containerId === 'mon-a');
    assert.equal(ev.exitStatus, 255);
    assert.match(readFileSync(join(a.dir, 'exit-reason'), 'utf8'), /monitor conmon \(pid \d+\) of container mon-a died/);
    assert.equal((await task.state({ id: 'mon-a' })).status, Status.STOPPED);
    assert.equal((await task.state({ id: 'mon-b' })).status, Status.RUNNING);
    await task.delete({ id: 'mon-a' });
    await task.kill({ id: 'mon-b', signal: 9 });
    await task.wait({ id: 'mon-b' });
    await task.delete({ id: 'mon-b' });
  });
});
