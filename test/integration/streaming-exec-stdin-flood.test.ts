/**
 * `exec -i … < /dev/zero` into a process that does not read its stdin, end to end (issue 12,
 * item 4): a real berthd, berth-shim, conmon and runc, a busybox container, the CRI Exec call
 * and a streaming client that writes zeros as fast as the transport lets it. The unit tests
 * (streaming-limits, streaming-ws-backpressure) show the streaming layer's limits with fake
 * backends; this shows the whole data path (SPDY/WebSocket → berthd → stdin FIFO → shim bridge
 * → conmon attach socket → the process's stdin pipe) pushes back, so:
 *  - the client is stalled after a few MiB (window not granted, or TCP full), not 512 MiB;
 *  - berthd's, the shim's and conmon's RSS stay bounded meanwhile;
 *  - other CRI calls still answer;
 *  - when the client leaves, the exec process and its conmon are gone, berthd holds no more
 *    fds than before, and the container keeps running.
 * A variant whose process reads (`wc -c`) shows 64 MiB really flow and the exit is 0, so the
 * stall above is backpressure and not a dead pipe.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type { WebSocket } from 'ws';
import { ContainerState } from '../../src/api/cri/runtime/v1/api_pb.js';
import type { SpdyConnection, SpdyStream } from '../../src/streaming/spdy/connection.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { busyboxConfig, createContainer, runPod, status, waitForState, type TestPod } from '../helpers/cri-container.js';
import { collect, openStream, spdyUpgrade } from '../helpers/spdy-client.js';
import { wsConnect } from '../helpers/ws-client.js';
import { until } from '../helpers/process.js';
import { knobFileOfPid, readProcs } from '../helpers/cgroup.js';

const MiB = 1024 * 1024;
/** What a client that nothing pushes back would get in before the test gives up on it. */
const FLOOD_CAP = 512 * MiB;
/** With backpressure the client stalls far below this (the pipes and windows hold a few MiB). */
const STALL_MAX = 64 * MiB;
/** RSS growth allowed while the client is stalled (berthd, shim); a broken path buffers ≥ 512 MiB. */
const RSS_GROWTH_MAX = 64 * MiB;
/** conmon is C with fixed buffers: a few MiB at most. */
const CONMON_GROWTH_MAX = 16 * MiB;

let env: CriEnv;
let pod: TestPod;
let box: string;
let boxPid: number;

before(async () => {
  env = await startCriEnv();
  await env.berthd.cri.image.pullImage({ image: { image: env.busybox.ref } });
  pod = await runPod(env);
  box = await createContainer(env, pod, busyboxConfig(env, 'box', ['sleep', '3600']));
  await env.berthd.cri.runtime.startContainer({ containerId: box });
  await waitForState(env, box, ContainerState.CONTAINER_RUNNING);
  const st = await env.berthd.cri.runtime.containerStatus({ containerId: box, verbose: true });
  boxPid = (JSON.parse(st.info.info!) as { pid: number }).pid;
});

after(async () => {
  await pod?.remove();
  await env?.cleanup();
});

interface Proc {
  pid: number;
  ppid: number;
  argv: string[];
}

function procs(): Proc[] {
  const out: Proc[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').slice(0, -1);
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (rest[0] === 'Z') continue;
      out.push({ pid: Number(name), ppid: Number(rest[1]), argv });
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** conmon processes of the container (its init's, and one per running exec). */
const conmons = () => procs().filter((p) => (p.argv[0] ?? '').endsWith('conmon') && p.argv.includes(box));
/** This berthd's berth-shim: the parent of the container's conmon (conmon is the shim's child). */
function shimPid(): number {
  const c = conmons()[0];
  assert.ok(c, "the container's conmon");
  const p = procs().find((x) => x.pid === c.ppid);
  assert.ok(p && /berth-shim|shim-berth/.test(p.argv.join(' ')), `the conmon's parent is berth-shim (${p?.argv.join(' ')})`);
  return p.pid;
}

function rss(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, `VmRSS of ${pid}`);
  return Number(m[1]) * 1024;
}

const fds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;
/** What berthd's fds are (for a failure message). */
const fdList = (pid: number) =>
  readdirSync(`/proc/${pid}/fd`)
    .map((fd) => {
      try {
        return `${fd}→${readlinkSync(`/proc/${pid}/fd/${fd}`)}`;
      } catch {
        return fd;
      }
    })
    .join(' ');

/** A client writing into the exec's stdin: one write in flight at a time, counted when done. */
interface Writer {
  /** Bytes whose write completed (taken by the transport: window granted, socket accepted). */
  offered: number;
  /** A write is outstanding (the client is blocked on it). */
  blocked(): boolean;
  /** Transport-specific evidence that the server grants nothing (for the failure message). */
  detail(): string;
  /** The exec's output so far (stdout, or the terminal). */
  output(): string;
  /** Drops the connection the way a killed kubectl does. */
  disconnect(): void;
}

const CHUNK = Buffer.alloc(64 * 1024);

/** Writes CHUNK after CHUNK through `write` until FLOOD_CAP or `stop()` (the caller's). */
function pump(write: (b: Buffer) => Promise<void>, w: { offered: number; inFlight: boolean; stopped: boolean }): void {
  void (async () => {
    while (!w.stopped && w.offered < FLOOD_CAP) {
      w.inFlight = true;
      await write(CHUNK);
      w.inFlight = false;
      w.offered += CHUNK.length;
    }
  })().catch(() => undefined);
}

async function execUrl(cmd: string[], tty = false): Promise<string> {
  const { url } = await env.berthd.cri.runtime.exec({ containerId: box, cmd, stdin: true, stdout: true, stderr: !tty, tty });
  return url;
}

/** SPDY exec with stdin: flow control as berth's client does it, or none at all (Go's spdystream). */
async function spdySession(url: string, flowControl: boolean, tty = false) {
  const { conn } = await spdyUpgrade(url, ['v4.channel.k8s.io'], { sendWindowUpdates: flowControl });
  // spdystream neither sends WINDOW_UPDATE nor waits for one: it writes until TCP stops it.
  if (!flowControl) conn.flowMode = 'off';
  const error = await openStream(conn, { streamtype: 'error' });
  const errorOut = collect(error);
  error.end();
  const stdin = await openStream(conn, { streamtype: 'stdin' });
  const stdout = await openStream(conn, { streamtype: 'stdout' });
  const stderr = tty ? undefined : await openStream(conn, { streamtype: 'stderr' });
  const resize = tty ? await openStream(conn, { streamtype: 'resize' }) : undefined;
  stdout.end();
  stderr?.end();
  // Output as it arrives (the scenarios watch it grow while stdin is stalled).
  const out: Buffer[] = [];
  stdout.on('data', (b: Buffer) => out.push(b));
  return { conn, stdin, resize, out, stdout: collect(stdout), stderr: stderr ? collect(stderr) : Promise.resolve(Buffer.alloc(0)), error: errorOut };
}

function spdyWriter(conn: SpdyConnection, stdin: SpdyStream, out: Buffer[] = []): Writer {
  const w = { offered: 0, inFlight: false, stopped: false };
  pump((b) => new Promise<void>((r, j) => stdin.write(b, (err) => (err ? j(err) : r()))), w);
  return {
    get offered() {
      return w.offered;
    },
    blocked: () => w.inFlight,
    detail: () => `stdin send window ${stdin.sendWindow}, session window ${conn.sessionSendWindow}, flow ${conn.flowMode}`,
    output: () => Buffer.concat(out).toString(),
    disconnect() {
      w.stopped = true;
      conn.destroy();
    },
  };
}

function wsWriter(ws: WebSocket, text: (channel: number) => string): Writer {
  const w = { offered: 0, inFlight: false, stopped: false };
  // Channel 0 (stdin), binary protocol: the first byte names the channel.
  const msg = Buffer.concat([Buffer.from([0]), CHUNK]);
  pump(() => new Promise<void>((r, j) => ws.send(msg, (err) => (err ? j(err) : r()))), w);
  return {
    get offered() {
      return w.offered;
    },
    blocked: () => w.inFlight,
    detail: () => `ws bufferedAmount ${ws.bufferedAmount}`,
    output: () => text(1),
    disconnect() {
      w.stopped = true;
      ws.terminate();
    },
  };
}

/**
 * Waits until the writer made no progress over a quiet period of samples (or got `cap` in),
 * recording the largest RSS of each process meanwhile.
 */
async function untilStalled(w: Writer, pids: Record<string, number>, cap: number): Promise<Record<string, number>> {
  const peak: Record<string, number> = {};
  const sample = () => {
    for (const [k, pid] of Object.entries(pids)) peak[k] = Math.max(peak[k] ?? 0, rss(pid));
  };
  let last = -1;
  let quiet = 0;
  // 12 samples 250 ms apart without one byte of progress: the client is stuck, not slow.
  while (quiet < 12 && w.offered < cap) {
    await new Promise((r) => setTimeout(r, 250));
    sample();
    if (w.offered === last) quiet++;
    else quiet = 0;
    last = w.offered;
  }
  sample();
  return peak;
}

interface Scenario {
  name: string;
  /** The exec's command; its last argument is a marker that finds its processes in /proc. */
  cmd: string[];
  tty?: boolean;
  connect(url: string): Promise<Writer>;
  /**
   * A terminal in canonical mode drops input beyond its 4 KiB line buffer (the kernel's n_tty
   * does, as a real terminal would): nothing stalls, the input is consumed and discarded. The
   * scenario then checks that `cap` bytes go through with memory bounded.
   */
  discards?: { cap: number };
  /** Checks while the client is stalled (after the memory and CRI checks). */
  whileStalled?(w: Writer): Promise<void>;
}

/** Host pids in the container's cgroup. */
async function containerProcs(): Promise<number[]> {
  return readProcs(knobFileOfPid(boxPid, 'procs')).sort((a, b) => a - b);
}

async function floodScenario(sc: Scenario): Promise<void> {
  const { name } = sc;
  const marker = sc.cmd[sc.cmd.length - 1]!;
  const execProcs = () => procs().filter((p) => p.argv[p.argv.length - 1] === marker && p.argv[0] === sc.cmd[0]);
  const berthd = env.berthd.proc.pid!;
  const shim = shimPid();
  assert.deepEqual(execProcs(), [], 'no exec process before');
  const inContainer = await containerProcs();
  assert.deepEqual(inContainer, [boxPid], 'only the container init runs');
  const conmonsBefore = conmons().map((p) => p.pid);
  assert.equal(conmonsBefore.length, 1, "only the init's conmon");
  // Settle berthd's fd table (the CRI connection is open, nothing streams) and take the baseline.
  await env.berthd.cri.runtime.version({ version: 'v1' });
  const fdsBefore = fds(berthd);
  const shimFdsBefore = fds(shim);
  const rssBefore = { berthd: rss(berthd), shim: rss(shim) };

  const w = await sc.connect(await execUrl(sc.cmd, sc.tty));
  try {
    await until(() => execProcs().length === 1 && conmons().length === 2, 'the exec process and its conmon', 30_000);
    const execConmon = conmons().find((p) => !conmonsBefore.includes(p.pid))!;
    const conmonRssBefore = rss(execConmon.pid);

    const peak = await untilStalled(w, { berthd, shim, conmon: execConmon.pid }, sc.discards?.cap ?? FLOOD_CAP);
    const offered = w.offered;
    const report = `${name}: client got ${(offered / MiB).toFixed(1)} MiB in (${w.detail()}); RSS berthd ${(rssBefore.berthd / MiB).toFixed(0)} → peak ${(peak.berthd! / MiB).toFixed(0)} MiB, shim ${(rssBefore.shim / MiB).toFixed(0)} → ${(peak.shim! / MiB).toFixed(0)} MiB, conmon ${(conmonRssBefore / MiB).toFixed(1)} → ${(peak.conmon! / MiB).toFixed(1)} MiB`;
    console.log(report);
    if (sc.discards) assert.ok(offered >= sc.discards.cap, `the terminal took all the input; ${report}`);
    else {
      assert.ok(offered < STALL_MAX, `the client stalled below ${STALL_MAX / MiB} MiB; ${report}`);
      assert.ok(w.blocked(), `the client's last write is still waiting; ${report}`);
    }
    assert.ok(peak.berthd! - rssBefore.berthd < RSS_GROWTH_MAX, `berthd RSS bounded; ${report}`);
    assert.ok(peak.shim! - rssBefore.shim < RSS_GROWTH_MAX, `shim RSS bounded; ${report}`);
    assert.ok(peak.conmon! - conmonRssBefore < CONMON_GROWTH_MAX, `conmon RSS bounded; ${report}`);

    // The daemon still serves while an exec is stuck on its stdin.
    const v = await env.berthd.cri.runtime.version({ version: 'v1' }, { timeoutMs: 10_000 });
    assert.equal(v.runtimeName, 'berth');
    const st = await env.berthd.cri.runtime.containerStatus({ containerId: box }, { timeoutMs: 10_000 });
    assert.equal(st.status!.state, ContainerState.CONTAINER_RUNNING);
    await sc.whileStalled?.(w);
    // And the writer is still stuck after all that: nothing moved meanwhile.
    if (!sc.discards) assert.ok(w.offered - offered <= CHUNK.length, `still stalled (${w.offered - offered} more bytes)`);

    w.disconnect();
    await until(() => execProcs().length === 0, 'the exec process to be gone', 30_000);
    await until(() => !conmons().some((p) => p.pid === execConmon.pid), "the exec's conmon to exit", 30_000);
    const deadline = Date.now() + 30_000;
    while ((await containerProcs()).join() !== inContainer.join() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(await containerProcs(), inContainer, 'nothing of the exec is left in the container');
    await until(() => fds(berthd) <= fdsBefore, `berthd's fds back to ${fdsBefore}`, 30_000).catch((err: Error) => {
      throw new Error(`${err.message}: now ${fds(berthd)} (${fdList(berthd)})`);
    });
    await until(() => fds(shim) <= shimFdsBefore, `the shim's fds back to ${shimFdsBefore}`, 30_000).catch((err: Error) => {
      throw new Error(`${err.message}: now ${fds(shim)} (${fdList(shim)})`);
    });
    // The container was not touched.
    assert.deepEqual(
      conmons().map((p) => p.pid),
      conmonsBefore,
    );
    assert.equal((await status(env, box)).state, ContainerState.CONTAINER_RUNNING);
  } finally {
    // A failed check must not leave the exec behind for the next scenario.
    w.disconnect();
    const deadline = Date.now() + 30_000;
    while ((await containerProcs()).length > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  }
}

const TICKS = 'i=0; while :; do i=$((i+1)); echo tick$i; sleep 0.2; done';

/** Waits for `more` new ticks in the output: the process's output flows while its stdin is flooded. */
async function ticksKeepComing(w: Writer, more: number): Promise<void> {
  const count = () => (w.output().match(/tick\d+/g) ?? []).length;
  const now = count();
  assert.ok(now > 0, `the exec printed ticks (${JSON.stringify(w.output().slice(0, 200))})`);
  await until(() => count() >= now + more, `${more} more ticks while stdin is stalled (have ${count()})`, 30_000);
}

test('exec -i < /dev/zero over SPDY with flow control: the window closes, memory stays bounded, leaving cleans up', { timeout: 180_000 }, async () => {
  await floodScenario({
    name: 'spdy (flow control)',
    cmd: ['sleep', '86399'],
    connect: async (url) => {
      const s = await spdySession(url, true);
      return spdyWriter(s.conn, s.stdin, s.out);
    },
  });
});

test('exec -i < /dev/zero over SPDY without flow control (spdystream): TCP stalls the client, memory stays bounded', { timeout: 180_000 }, async () => {
  await floodScenario({
    name: 'spdy (no flow control)',
    cmd: ['sleep', '86398'],
    connect: async (url) => {
      const s = await spdySession(url, false);
      return spdyWriter(s.conn, s.stdin, s.out);
    },
  });
});

test('exec -i < /dev/zero over WebSocket (v5): the socket is not read, memory stays bounded, leaving cleans up', { timeout: 180_000 }, async () => {
  await floodScenario({
    name: 'websocket v5',
    cmd: ['sleep', '86397'],
    connect: async (url) => {
      const s = await wsConnect(url, ['v5.channel.k8s.io']);
      return wsWriter(s.ws, (c) => s.text(c));
    },
  });
});

test('exec -i < /dev/zero into a process that prints but does not read: its output keeps flowing while stdin is stalled', { timeout: 180_000 }, async () => {
  await floodScenario({
    name: 'spdy, printing process',
    cmd: ['sh', '-c', TICKS, 'flood-ticker'],
    connect: async (url) => {
      const s = await spdySession(url, true);
      return spdyWriter(s.conn, s.stdin, s.out);
    },
    whileStalled: (w) => ticksKeepComing(w, 5),
  });
});

test(
  'exec -it < /dev/zero (a TTY nobody reads): the terminal drops the input, memory stays bounded, output flows, leaving cleans up',
  { timeout: 180_000 },
  async () => {
    await floodScenario({
      name: 'spdy, tty',
      cmd: ['sh', '-c', TICKS, 'flood-tty'],
      tty: true,
      discards: { cap: 128 * MiB },
      connect: async (url) => {
        const s = await spdySession(url, true, true);
        return spdyWriter(s.conn, s.stdin, s.out);
      },
      whileStalled: (w) => ticksKeepComing(w, 5),
    });
  },
);

const FLOW = 64 * MiB;

test('exec -i into a process that reads: 64 MiB arrive over SPDY and it exits 0', { timeout: 180_000 }, async () => {
  const s = await spdySession(await execUrl(['wc', '-c']), true);
  try {
    for (let n = 0; n < FLOW; n += CHUNK.length) await new Promise<void>((r, j) => s.stdin.write(CHUNK, (err) => (err ? j(err) : r())));
    s.stdin.end();
    const [out, err, status] = await Promise.all([s.stdout, s.stderr, s.error]);
    assert.equal(err.toString(), '');
    assert.equal(out.toString().trim(), String(FLOW));
    assert.equal((JSON.parse(status.toString()) as { status: string }).status, 'Success');
  } finally {
    s.conn.destroy();
  }
});

test('exec -i into a process that reads: 64 MiB arrive over WebSocket and it exits 0', { timeout: 180_000 }, async () => {
  const s = await wsConnect(await execUrl(['wc', '-c']), ['v5.channel.k8s.io']);
  const msg = Buffer.concat([Buffer.from([0]), CHUNK]);
  for (let n = 0; n < FLOW; n += CHUNK.length) await new Promise<void>((r, j) => s.ws.send(msg, (err) => (err ? j(err) : r())));
  s.send(255, Buffer.from([0]));
  await s.closed;
  assert.equal(s.text(2), '');
  assert.equal(s.text(1).trim(), String(FLOW));
  assert.equal((JSON.parse(s.text(3)) as { status: string }).status, 'Success');
});
