/**
 * The task layer as kubelet sees it (real berthd, berth-shim, conmon, runc, CNI): one
 * berth-shim for the node, a conmon per container; killing berthd, the shim or both loses no
 * container, no log line and no exit; the shim dying in the middle of CreateContainer or
 * StopContainer leaves every record true; stopping berthd leaves no idle shim behind.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ContainerState, PodSandboxState } from '../../src/api/cri/runtime/v1/api_pb.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { busyboxConfig, createContainer, runPod, waitForState, type TestPod } from '../helpers/cri-container.js';
import { isRoot } from '../helpers/netns.js';
import { alive } from '../helpers/process.js';

const skip = !isRoot() ? 'needs root' : false;
let env: CriEnv | undefined;
after(async () => {
  await env?.cleanup();
});

async function containerPid(e: CriEnv, id: string): Promise<number> {
  const s = await e.berthd.cri.runtime.containerStatus({ containerId: id, verbose: true });
  return (JSON.parse(s.info.info!) as { pid: number }).pid;
}

function ppid(pid: number): number {
  return Number(/^PPid:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

function comm(pid: number): string {
  return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
}

/** conmon processes of this berthd (their command lines name its task bundles). */
function monitors(e: CriEnv): number[] {
  const want = join(e.berthd.state, 'tasks');
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
        return comm(Number(p)) === 'conmon' && cmd.some((a) => a.startsWith(want));
      } catch {
        return false;
      }
    })
    .map(Number);
}

function shimPid(e: CriEnv): number {
  return Number(readFileSync(join(e.berthd.state, 's', 'k8s.io.sock.pid'), 'utf8'));
}

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The numbers a counter container logged (its CRI log's stdout lines). */
function numbers(pod: TestPod, name: string): number[] {
  return readFileSync(join(pod.logDir, `${name}.log`), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' '))
    .filter((p) => p[1] === 'stdout')
    .map((p) => Number(p[3]));
}

const COUNTER = ['sh', '-c', 'trap "exit 0" TERM; i=0; while true; do echo $i; i=$((i+1)); sleep 0.05; done'];

async function ensureEnv(): Promise<CriEnv> {
  if (!env) {
    env = await startCriEnv();
    await env.berthd.cri.image.pullImage({ image: { image: env.busybox.ref } });
  }
  return env;
}

test('one berth-shim for the node, a conmon per container; pods survive each other and a berthd crash', { skip, timeout: 120_000 }, async () => {
  const e = await ensureEnv();
  const rt = (): CriEnv['berthd']['cri']['runtime'] => e.berthd.cri.runtime;
  const podA = await runPod(e);
  const podB = await runPod(e);
  const a = await createContainer(e, podA, busyboxConfig(e, 'a', COUNTER));
  const b = await createContainer(e, podB, busyboxConfig(e, 'b', COUNTER));
  for (const id of [a, b]) await rt().startContainer({ containerId: id });
  const pidA = await containerPid(e, a);
  const pidB = await containerPid(e, b);
  const monA = ppid(pidA);
  const monB = ppid(pidB);
  assert.equal(comm(monA), 'conmon');
  assert.equal(comm(monB), 'conmon');
  assert.notEqual(monA, monB, 'a monitor per container');
  const shim = shimPid(e);
  assert.match(readFileSync(`/proc/${shim}/cmdline`, 'utf8'), /berth-shim|containerd-shim-berth-v1/);

  await podA.remove();
  await waitUntil('pod A container gone', () => !alive(pidA));
  assert.ok(alive(shim) && alive(pidB) && alive(monB));

  await e.berthd.kill9();
  assert.ok(alive(shim) && alive(pidB));
  await e.berthd.restart();
  const pods = new Map((await rt().listPodSandbox({})).items.map((p) => [p.id, p.state]));
  assert.equal(pods.get(podB.id), PodSandboxState.SANDBOX_READY);
  assert.equal(await containerPid(e, b), pidB);
  await rt().stopContainer({ containerId: b, timeout: 10n });
  assert.equal((await waitForState(e, b, ContainerState.CONTAINER_EXITED)).exitCode, 0);
  const n = numbers(podB, 'b');
  assert.deepEqual(
    n,
    n.map((_, i) => i),
    'every line once, in order',
  );
  await podB.remove();
});

test(
  'kill -9 of berthd and of the shim: five containers in three pods lose no line; an exit meanwhile keeps its code and time',
  { skip, timeout: 180_000 },
  async () => {
    const e = await ensureEnv();
    const rt = (): CriEnv['berthd']['cri']['runtime'] => e.berthd.cri.runtime;
    const pods = [await runPod(e), await runPod(e), await runPod(e)];
    const counters: Array<{ pod: TestPod; name: string; id: string }> = [];
    for (const [i, pod] of pods.entries()) {
      for (let j = 0; j < (i === 0 ? 1 : 2); j++) {
        const name = `n${i}-${j}`;
        counters.push({ pod, name, id: await createContainer(e, pod, busyboxConfig(e, name, COUNTER)) });
      }
    }
    const gate = join(pods[0]!.logDir, 'gate');
    const quitter = await createContainer(
      e,
      pods[0]!,
      busyboxConfig(e, 'quitter', ['sh', '-c', 'while [ ! -e /gate/go ]; do sleep 0.05; done; exit 5'], {
        mounts: [{ containerPath: '/gate', hostPath: pods[0]!.logDir }],
      }),
    );
    for (const c of [...counters.map((c) => c.id), quitter]) await rt().startContainer({ containerId: c });
    const pids = new Map<string, number>();
    for (const c of counters) pids.set(c.id, await containerPid(e, c.id));
    await waitUntil('every counter logged 5 lines', () => counters.every((c) => numbers(c.pod, c.name).length >= 5));

    // Both berthd and the shim die; the quitter exits while neither runs.
    const shim = shimPid(e);
    await e.berthd.kill9();
    process.kill(shim, 'SIGKILL');
    const downAt = Date.now();
    (await import('node:fs')).writeFileSync(gate.replace(/gate$/, 'go'), '');
    await waitUntil('quitter exited', () => existsSync(join(e.berthd.state, 'tasks', 'k8s.io', quitter, 'exit')));
    const gapStart = new Map(counters.map((c) => [c.id, numbers(c.pod, c.name).length]));
    await waitUntil('every counter logged 5 more lines while neither berthd nor the shim ran', () =>
      counters.every((c) => numbers(c.pod, c.name).length >= gapStart.get(c.id)! + 5),
    );
    await e.berthd.restart();
    const upAt = Date.now();
    assert.notEqual(shimPid(e), shim, 'a new shim serves the node');

    for (const c of counters) {
      const st = (await rt().containerStatus({ containerId: c.id })).status!;
      assert.equal(st.state, ContainerState.CONTAINER_RUNNING, `${c.name} still runs`);
      assert.equal(await containerPid(e, c.id), pids.get(c.id), `${c.name} is the same process`);
    }
    const q = await waitForState(e, quitter, ContainerState.CONTAINER_EXITED);
    assert.equal(q.exitCode, 5);
    const finished = Number(q.finishedAt / 1_000_000n);
    assert.ok(finished >= downAt - 1000 && finished <= upAt, `finished ${new Date(finished).toISOString()} lies in the gap`);

    // Exec, stop and remove work afterwards.
    const ex = await rt().execSync({ containerId: counters[0]!.id, cmd: ['echo', 'still-here'], timeout: 10n });
    assert.equal(Buffer.from(ex.stdout).toString(), 'still-here\n');
    for (const c of counters) await rt().stopContainer({ containerId: c.id, timeout: 10n });
    for (const c of counters) {
      const n = numbers(c.pod, c.name);
      assert.ok(n.length > 10, `${c.name} logged ${n.length} lines`);
      assert.deepEqual(
        n,
        n.map((_, i) => i),
        `${c.name}: every line once, in order, across both kills`,
      );
    }
    for (const p of pods) await p.remove();
  },
);

test('the shim killed in the middle of StopContainer: the stop completes and the exit is true', { skip, timeout: 120_000 }, async () => {
  const e = await ensureEnv();
  const rt = (): CriEnv['berthd']['cri']['runtime'] => e.berthd.cri.runtime;
  const pod = await runPod(e);
  // Takes its time to stop: SIGTERM makes it exit 3 after a second.
  const id = await createContainer(
    e,
    pod,
    busyboxConfig(e, 'slowstop', ['sh', '-c', 'trap "echo stopping; sleep 1; exit 3" TERM; echo trapped; while true; do sleep 0.05; done']),
  );
  await rt().startContainer({ containerId: id });
  const log = join(pod.logDir, 'slowstop.log');
  await waitUntil('the TERM trap is installed', () => existsSync(log) && readFileSync(log, 'utf8').includes('trapped'));
  const stop = rt().stopContainer({ containerId: id, timeout: 20n });
  // The shim dies in the middle of the stop: after SIGTERM reached the container, before it exits.
  await waitUntil('SIGTERM reached the container', () => readFileSync(log, 'utf8').includes('stopping'));
  process.kill(shimPid(e), 'SIGKILL');
  await stop;
  const st = await waitForState(e, id, ContainerState.CONTAINER_EXITED);
  assert.equal(st.exitCode, 3, 'the real exit code, not a synthesized one');
  await pod.remove();
});

test(
  'the shim killed in the middle of CreateContainer: the create either fails leaving nothing, or yields a working container',
  { skip, timeout: 120_000 },
  async () => {
    const e = await ensureEnv();
    const rt = (): CriEnv['berthd']['cri']['runtime'] => e.berthd.cri.runtime;
    const pod = await runPod(e);
    for (const delay of [0, 15, 40]) {
      const create = createContainer(e, pod, busyboxConfig(e, `mid-${delay}`, ['sleep', '3600'])).then(
        (id) => ({ id }),
        (err: unknown) => ({ err }),
      );
      await new Promise((r) => setTimeout(r, delay));
      process.kill(shimPid(e), 'SIGKILL');
      const r = await create;
      if ('id' in r) {
        await rt().startContainer({ containerId: r.id });
        await waitForState(e, r.id, ContainerState.CONTAINER_RUNNING);
        await rt().stopContainer({ containerId: r.id, timeout: 0n });
        await rt().removeContainer({ containerId: r.id });
      }
      const listed = (await rt().listContainers({})).containers.filter((c) => c.metadata?.name === `mid-${delay}`);
      // And no monitor of a container nobody knows: only the pause's conmon.
      await waitUntil('only the pause is monitored', () => monitors(e).length === 1);
      assert.deepEqual(listed, [], 'nothing half-made is listed');
      // Only the pod's own (its pause: the CRI default shares a pid namespace) may remain.
      await waitUntil(
        `no container bundle left (delay ${delay}, create ${'id' in r ? 'succeeded' : `failed: ${String(r.err)}`})`,
        () => readdirSync(join(e.berthd.state, 'tasks', 'k8s.io')).filter((b) => b !== pod.id).length === 0,
      ).catch((err: unknown) => {
        const dir = join(e.berthd.state, 'tasks', 'k8s.io');
        const left = readdirSync(dir).filter((b) => b !== pod.id);
        const log = e.berthd
          .log()
          .split('\n')
          .filter((l) => left.some((b) => l.includes(b.slice(0, 12))) || /shim/.test(l))
          .slice(-30)
          .join('\n');
        throw new Error(`${(err as Error).message}: ${left.map((b) => `${b}: ${readdirSync(join(dir, b)).join(',')}`).join('; ')}\n${log}`);
      });
    }
    await pod.remove();
  },
);

test('stopping berthd leaves no idle shim; a shim hosting containers keeps running', { skip, timeout: 120_000 }, async () => {
  const e = await ensureEnv();
  const rt = (): CriEnv['berthd']['cri']['runtime'] => e.berthd.cri.runtime;
  const pod = await runPod(e);
  const id = await createContainer(e, pod, busyboxConfig(e, 'stays', ['sleep', '3600']));
  await rt().startContainer({ containerId: id });
  const busy = shimPid(e);
  assert.equal(await e.berthd.stop(), 0);
  assert.ok(alive(busy), 'the shim hosting a container outlives berthd');
  await e.berthd.restart();
  // Not a moment's survival but the same process: the restarted berthd finds and keeps it.
  assert.equal(shimPid(e), busy, 'the restarted berthd uses the shim that outlived it');
  assert.ok(alive(busy));
  assert.equal((await rt().containerStatus({ containerId: id })).status?.state, ContainerState.CONTAINER_RUNNING);
  await rt().stopContainer({ containerId: id, timeout: 0n });
  await rt().removeContainer({ containerId: id });
  await pod.remove();
  const idle = shimPid(e);
  assert.equal(await e.berthd.stop(), 0);
  await waitUntil('idle shim exit', () => !alive(idle));
  await e.berthd.restart();
});
