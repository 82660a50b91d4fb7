/**
 * kill -9 of the processes below berthd after create (issue 12): berth-shim, the conmon of a
 * container or of the pause, runc init and `runc start`/`runc kill`, during StartContainer and
 * StopPodSandbox. berthd runs with `pause` faults (BERTH_FAULT) at StartContainer.task_start,
 * StopPodSandbox.containers and StopPodSandbox.pause, which the test releases at once unless a
 * case armed them; a case armed at a step waits there, kills its victim, then releases the step.
 * The runtime verbs go through a wrapper runtime binary (`[runtimes.held]`) that holds
 * `start` or `kill` while a flag file exists, for the kills during those verbs (the default
 * runc handler starts through the exec fifo, without a runc process: its cases use the pause
 * point). After each case: berthd keeps serving (Version), the records tell the truth (a
 * container is running with a live process, or EXITED/UNKNOWN with a reason; or the RPC failed
 * with a clear error and a retry works), and after the pod is removed the leak inventory equals
 * the one before.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerState, PodSandboxState } from '../../src/api/cri/runtime/v1/api_pb.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { busyboxConfig, runPod, status, type TestPod } from '../helpers/cri-container.js';
import { awaitPause, inventory, resume, settledLeaks, type Inventory } from '../helpers/faults.js';
import { isRoot } from '../helpers/netns.js';
import { alive, ended, until } from '../helpers/process.js';

const skip = !isRoot() ? 'needs root' : false;
const dir = mkdtempSync(join(tmpdir(), 'berth-fault-late-'));
const faultDir = join(dir, 'faults');
const STEPS = ['StartContainer.task_start', 'StopPodSandbox.containers', 'StopPodSandbox.pause'];
let env: CriEnv | undefined;
let baseline: Inventory;
/** Steps a case holds; every other pause marker is released as soon as it appears. */
const armed = new Set<string>();
let releaser: NodeJS.Timeout | undefined;

const holdFlag = (verb: string) => join(dir, `hold-${verb}`);
const heldPid = (verb: string) => join(dir, `${verb}.pid`);

before(async () => {
  if (skip) return;
  const runc = spawnPath('runc');
  // Holds `runc start` / `runc kill` while hold-<verb> exists (its pid in <verb>.pid).
  writeFileSync(
    join(dir, 'runc-wrap'),
    `#!/bin/sh
for a in "$@"; do
  case "$a" in
    start|kill)
      if [ -e ${dir}/hold-$a ]; then
        echo $$ > ${dir}/$a.pid.tmp && mv ${dir}/$a.pid.tmp ${dir}/$a.pid
        while [ -e ${dir}/hold-$a ]; do sleep 0.05; done
      fi
      break;;
    create|delete|state|exec|ps|pause|resume|update|events) break;;
  esac
done
exec ${runc} "$@"
`,
  );
  chmodSync(join(dir, 'runc-wrap'), 0o755);
  env = await startCriEnv({
    env: { BERTH_FAULT: STEPS.map((s) => `${s}:pause`).join(','), BERTH_FAULT_DIR: faultDir },
    extraToml: `[runtimes.held]\nbinary = "${join(dir, 'runc-wrap')}"\n`,
  });
  releaser = setInterval(() => {
    let names: string[] = [];
    try {
      names = readdirSync(faultDir);
    } catch {
      return;
    }
    for (const n of names) if (!armed.has(n)) resume(faultDir, n);
  }, 20);
  await env.berthd.cri.image.pullImage({ image: { image: env.pause.ref } });
  await env.berthd.cri.image.pullImage({ image: { image: env.busybox.ref } });
  baseline = inventory(env);
});
after(async () => {
  armed.clear();
  for (const v of ['start', 'kill']) rmSync(holdFlag(v), { force: true });
  await env?.cleanup();
  if (releaser) clearInterval(releaser);
  rmSync(dir, { recursive: true, force: true });
});

function spawnPath(bin: string): string {
  for (const d of (process.env['PATH'] ?? '/usr/bin').split(':')) if (existsSync(join(d, bin))) return join(d, bin);
  throw new Error(`${bin} not on PATH`);
}
function ppidOf(pid: number): number {
  return Number(/^PPid:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}
function commOf(pid: number): string {
  return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
}
/** The nearest ancestor of `pid` that is conmon, or berth-shim (conmon inherits the shim's env: the first non-conmon with it). */
function ancestor(kind: 'conmon' | 'berth-shim', pid: number): number {
  let p = pid;
  for (let i = 0; i < 6 && p > 1; i++) {
    p = ppidOf(p);
    const comm = commOf(p);
    if (kind === 'conmon' && comm === 'conmon') return p;
    if (kind === 'berth-shim' && comm !== 'conmon' && readFileSync(`/proc/${p}/environ`, 'utf8').includes('BERTH_SHIM_STATE_DIR=')) return p;
  }
  throw new Error(`no ${kind} above ${pid}`);
}
/** The container's (or pause's) init pid, from runc itself. */
function initPid(id: string): number {
  const st = spawnSync('runc', ['--root', join(env!.berthd.state, 'runc', 'k8s.io'), 'state', id], { encoding: 'utf8' });
  assert.equal(st.status, 0, `runc state ${id}: ${st.stderr}`);
  return (JSON.parse(st.stdout) as { pid: number }).pid;
}

const rt = () => env!.berthd.cri.runtime;
const details = (err: unknown) => String((err as { details?: string }).details ?? (err as Error).message);

async function kill(pid: number, what: string): Promise<void> {
  process.stdout.write(`#   killing ${what}: ${commOf(pid)} ${pid}\n`);
  process.kill(pid, 'SIGKILL');
  await until(() => ended(pid), `${what} ${pid} dead`);
}

/** The outcome of an RPC: its value or its error. */
async function outcome<T>(p: Promise<T>): Promise<T | Error> {
  return p.then(
    (v) => v,
    (e: unknown) => e as Error,
  );
}

function assertClearError(err: Error, what: string): void {
  const d = details(err);
  assert.ok(d.length > 0 && !/^\s*$/.test(d), `${what}: a clear error (got ${JSON.stringify(d)})`);
  assert.notEqual((err as { code?: number }).code, 1, `${what}: not CANCELLED`);
}

/** A container record tells the truth: running with a live process, or exited/unknown saying why. */
async function assertTruthfulContainer(id: string, what: string): Promise<ContainerState> {
  const r = await rt().containerStatus({ containerId: id, verbose: true });
  const s = r.status!;
  const pid = (JSON.parse(r.info.info ?? '{}') as { pid?: number }).pid;
  if (s.state === ContainerState.CONTAINER_RUNNING) assert.ok(pid && alive(pid), `${what}: RUNNING container has a live process (pid ${pid})`);
  else if (s.state === ContainerState.CONTAINER_EXITED || s.state === ContainerState.CONTAINER_UNKNOWN)
    assert.ok(s.reason !== '' || s.message !== '', `${what}: ${ContainerState[s.state]} container says why`);
  else if (s.state === ContainerState.CONTAINER_CREATED) assert.ok(alive(initPid(id)), `${what}: CREATED container has its runc init`);
  process.stdout.write(`#   container: ${ContainerState[s.state]} ${s.reason} ${s.message.slice(0, 160)}\n`);
  return s.state;
}

async function finish(pod: TestPod, what: string): Promise<void> {
  await rt().version({});
  armed.clear();
  await pod.remove();
  assert.deepEqual(
    (await rt().listPodSandbox({})).items.map((p) => p.id),
    [],
    `${what}: the pod is gone`,
  );
  const left = await settledLeaks(env!, baseline, {}, 40_000);
  if (left.length > 0) {
    // berthd's lines about what was left, for the failure report.
    const ids = new Set(left.join(' ').match(/[0-9a-f]{64}/g) ?? []);
    for (const line of env!.berthd.log().split('\n'))
      if ([...ids].some((i) => line.includes(i.slice(0, 12)))) process.stdout.write(`# berthd: ${line.slice(0, 400)}\n`);
  }
  assert.deepEqual(left, [], `${what}: nothing leaks`);
}

// --- StartContainer ---------------------------------------------------------------------

type StartVictim = 'runc init' | 'conmon' | 'berth-shim';
for (const victim of ['runc init', 'conmon', 'berth-shim'] as StartVictim[]) {
  test(
    `kill -9 of ${victim} at StartContainer.task_start (exec-fifo start): the record tells the truth, a new container runs, nothing leaks`,
    { skip, timeout: 180_000 },
    async () => {
      const what = `task_start/${victim}`;
      const pod = await runPod(env!);
      try {
        const cfg = busyboxConfig(env!, `s-${victim.replace(' ', '-')}`, ['sleep', '3600']);
        const id = (await rt().createContainer({ podSandboxId: pod.id, config: cfg, sandboxConfig: pod.config })).containerId;
        const init = initPid(id);
        armed.add('StartContainer.task_start');
        const started = outcome(rt().startContainer({ containerId: id }, { timeoutMs: 120_000 }));
        await awaitPause(faultDir, 'StartContainer.task_start');
        await kill(victim === 'runc init' ? init : ancestor(victim, init), victim);
        resume(faultDir, 'StartContainer.task_start');
        armed.delete('StartContainer.task_start');
        const r = await started;
        process.stdout.write(`# ${what}: StartContainer ${r instanceof Error ? `failed: ${details(r).slice(0, 200)}` : 'succeeded'}\n`);
        if (r instanceof Error) assertClearError(r, what);
        const state = await assertTruthfulContainer(id, what);
        if (r instanceof Error) assert.notEqual(state, ContainerState.CONTAINER_RUNNING, `${what}: a failed start is not RUNNING`);
        // berthd serves the pod on: a new container of the same name runs.
        await rt().stopContainer({ containerId: id, timeout: 0n });
        await rt().removeContainer({ containerId: id });
        const again = (await rt().createContainer({ podSandboxId: pod.id, config: cfg, sandboxConfig: pod.config })).containerId;
        await rt().startContainer({ containerId: again });
        assert.equal(await assertTruthfulContainer(again, `${what} again`), ContainerState.CONTAINER_RUNNING);
      } finally {
        await finish(pod, what);
      }
    },
  );
}

for (const victim of ['runc', 'conmon', 'berth-shim'] as const) {
  test(`kill -9 of ${victim} during runc start: a clear error or a running container, a new one runs, nothing leaks`, { skip, timeout: 180_000 }, async () => {
    const what = `runc start/${victim}`;
    const pod = await runPod(env!, {}, 'held');
    try {
      const cfg = busyboxConfig(env!, `r-${victim}`, ['sleep', '3600']);
      const id = (await rt().createContainer({ podSandboxId: pod.id, config: cfg, sandboxConfig: pod.config })).containerId;
      const init = initPid(id);
      rmSync(heldPid('start'), { force: true });
      writeFileSync(holdFlag('start'), '');
      const started = outcome(rt().startContainer({ containerId: id }, { timeoutMs: 120_000 }));
      await until(() => existsSync(heldPid('start')), 'runc start held', 60_000);
      const held = Number(readFileSync(heldPid('start'), 'utf8'));
      await kill(victim === 'runc' ? held : victim === 'conmon' ? ancestor('conmon', init) : ancestor('berth-shim', held), victim);
      rmSync(holdFlag('start'), { force: true });
      const r = await started;
      process.stdout.write(`# ${what}: StartContainer ${r instanceof Error ? `failed: ${details(r).slice(0, 200)}` : 'succeeded'}\n`);
      if (r instanceof Error) assertClearError(r, what);
      const state = await assertTruthfulContainer(id, what);
      if (r instanceof Error) assert.notEqual(state, ContainerState.CONTAINER_RUNNING, `${what}: a failed start is not RUNNING`);
      await rt().stopContainer({ containerId: id, timeout: 0n });
      await rt().removeContainer({ containerId: id });
      const again = (await rt().createContainer({ podSandboxId: pod.id, config: cfg, sandboxConfig: pod.config })).containerId;
      await rt().startContainer({ containerId: again });
      assert.equal(await assertTruthfulContainer(again, `${what} again`), ContainerState.CONTAINER_RUNNING);
    } finally {
      rmSync(holdFlag('start'), { force: true });
      await finish(pod, what);
    }
  });
}

// --- StopPodSandbox ---------------------------------------------------------------------

interface StopCase {
  at: 'StopPodSandbox.containers' | 'StopPodSandbox.pause' | 'runc kill';
  victim: 'conmon' | 'berth-shim' | 'runc';
  /** Whose process: the container's or the pause's. */
  of: 'container' | 'pause';
}
const stopCases: StopCase[] = [
  { at: 'StopPodSandbox.containers', victim: 'conmon', of: 'container' },
  { at: 'StopPodSandbox.containers', victim: 'berth-shim', of: 'container' },
  { at: 'StopPodSandbox.pause', victim: 'conmon', of: 'pause' },
  { at: 'StopPodSandbox.pause', victim: 'berth-shim', of: 'pause' },
  { at: 'runc kill', victim: 'runc', of: 'container' },
  { at: 'runc kill', victim: 'berth-shim', of: 'container' },
];

for (const c of stopCases) {
  test(
    `kill -9 of ${c.of === 'pause' ? "the pause's" : "a container's"} ${c.victim} at ${c.at}: Stop ends NOTREADY (or a clear error and a retry works), nothing leaks`,
    { skip, timeout: 180_000 },
    async () => {
      const what = `${c.at}/${c.victim}`;
      const pod = await runPod(env!, {}, c.at === 'runc kill' ? 'held' : '');
      try {
        const cfg = busyboxConfig(env!, `k-${c.victim}`, ['sleep', '3600']);
        const id = (await rt().createContainer({ podSandboxId: pod.id, config: cfg, sandboxConfig: pod.config })).containerId;
        await rt().startContainer({ containerId: id });
        const target = initPid(c.of === 'pause' ? pod.id : id);
        let stopped: Promise<unknown>;
        if (c.at === 'runc kill') {
          rmSync(heldPid('kill'), { force: true });
          writeFileSync(holdFlag('kill'), '');
          stopped = outcome(rt().stopPodSandbox({ podSandboxId: pod.id }, { timeoutMs: 120_000 }));
          await until(() => existsSync(heldPid('kill')), 'runc kill held', 60_000);
          const held = Number(readFileSync(heldPid('kill'), 'utf8'));
          await kill(c.victim === 'runc' ? held : ancestor('berth-shim', held), c.victim);
          rmSync(holdFlag('kill'), { force: true });
        } else {
          armed.add(c.at);
          stopped = outcome(rt().stopPodSandbox({ podSandboxId: pod.id }, { timeoutMs: 120_000 }));
          await awaitPause(faultDir, c.at);
          await kill(ancestor(c.victim as 'conmon' | 'berth-shim', target), c.victim);
          resume(faultDir, c.at);
          armed.delete(c.at);
        }
        const r = await stopped;
        process.stdout.write(`# ${what}: StopPodSandbox ${r instanceof Error ? `failed: ${details(r).slice(0, 200)}` : 'succeeded'}\n`);
        if (r instanceof Error) {
          assertClearError(r, what);
          await rt().stopPodSandbox({ podSandboxId: pod.id });
        }
        const s = await rt().podSandboxStatus({ podSandboxId: pod.id });
        assert.equal(s.status?.state, PodSandboxState.SANDBOX_NOTREADY, `${what}: the pod is NOTREADY after Stop`);
        assert.ok(ended(target), `${what}: the ${c.of}'s process is gone`);
        const cs = (await status(env!, id)).state;
        assert.ok(cs === ContainerState.CONTAINER_EXITED || cs === ContainerState.CONTAINER_UNKNOWN, `${what}: container after Stop is ${ContainerState[cs]}`);
        await assertTruthfulContainer(id, what);
      } finally {
        rmSync(holdFlag('kill'), { force: true });
        await finish(pod, what);
      }
    },
  );
}
