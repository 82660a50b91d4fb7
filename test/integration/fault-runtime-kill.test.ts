/**
 * kill -9 of the processes below berthd while they create a container or a pod's pause
 * (issue 12): `runc create` itself, the container's conmon, and berth-shim. A runtime handler whose binary is a
 * wrapper around runc holds `create` while a flag file exists (so the test kills at a known
 * point, mid-create); then for each victim: CreateContainer ends with a clear error or a
 * container whose record tells the truth (never hangs), the pod keeps working (a retry of the
 * same name succeeds and runs), and once the pod is removed the leak inventory equals the one
 * taken before.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerState } from '../../src/api/cri/runtime/v1/api_pb.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { busyboxConfig, runPod, waitForState } from '../helpers/cri-container.js';
import { inventory, settledLeaks, type Inventory } from '../helpers/faults.js';
import { isRoot } from '../helpers/netns.js';
import { alive, ended, until } from '../helpers/process.js';

const skip = !isRoot() ? 'needs root' : false;
const dir = mkdtempSync(join(tmpdir(), 'berth-fault-runc-'));
const hold = join(dir, 'hold-create');
const pidFile = join(dir, 'create.pid');
let env: CriEnv | undefined;
let baseline: Inventory;

before(async () => {
  if (skip) return;
  const runc = spawnPath('runc');
  writeFileSync(
    join(dir, 'runc-wrap'),
    `#!/bin/sh
for a in "$@"; do
  if [ "$a" = create ] && [ -e ${hold} ]; then
    echo $$ > ${pidFile}.tmp && mv ${pidFile}.tmp ${pidFile}
    while [ -e ${hold} ]; do sleep 0.05; done
  fi
done
exec ${runc} "$@"
`,
  );
  chmodSync(join(dir, 'runc-wrap'), 0o755);
  env = await startCriEnv({ extraToml: `[runtimes.held]\nbinary = "${join(dir, 'runc-wrap')}"\n` });
  await env.berthd.cri.image.pullImage({ image: { image: env.pause.ref } });
  await env.berthd.cri.image.pullImage({ image: { image: env.busybox.ref } });
  baseline = inventory(env);
});
after(async () => {
  await env?.cleanup();
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

/** The victim's pid, from the held `runc create` (the wrapper shell). */
function victim(kind: 'runc' | 'conmon' | 'berth-shim', runcPid: number): number {
  if (kind === 'runc') return runcPid;
  let p = runcPid;
  for (let i = 0; i < 6 && p > 1; i++) {
    p = ppidOf(p);
    const comm = commOf(p);
    if (kind === 'conmon' && comm === 'conmon') return p;
    // conmon inherits the shim's environment: the shim is the first non-conmon ancestor with it.
    if (kind === 'berth-shim' && comm !== 'conmon' && readFileSync(`/proc/${p}/environ`, 'utf8').includes('BERTH_SHIM_STATE_DIR=')) return p;
  }
  throw new Error(`no ${kind} above runc create ${runcPid}`);
}

const rt = () => env!.berthd.cri.runtime;
const details = (err: unknown) => String((err as { details?: string }).details ?? (err as Error).message);

for (const kind of ['runc', 'conmon', 'berth-shim'] as const) {
  test(`kill -9 of ${kind} during runc create: a clear error or a truthful record, and nothing leaks`, { skip, timeout: 180_000 }, async () => {
    const pod = await runPod(env!, {}, 'held');
    try {
      rmSync(pidFile, { force: true });
      writeFileSync(hold, '');
      const cfg = busyboxConfig(env!, `c-${kind}`, ['sleep', '3600']);
      const created = rt().createContainer({ podSandboxId: pod.id, config: cfg, sandboxConfig: pod.config }, { timeoutMs: 120_000 });
      created.catch(() => undefined);
      await until(() => existsSync(pidFile), 'runc create held', 60_000);
      const runcPid = Number(readFileSync(pidFile, 'utf8'));
      const pid = victim(kind, runcPid);
      process.stdout.write(`# ${kind}: killing ${commOf(pid)} ${pid} (runc create ${runcPid}, its parent ${commOf(ppidOf(runcPid))})\n`);
      process.kill(pid, 'SIGKILL');
      await until(() => ended(pid), `${kind} ${pid} dead`);
      rmSync(hold, { force: true });
      const outcome = await created.then(
        (r) => r.containerId,
        (e: unknown) => e as Error,
      );
      if (outcome instanceof Error) {
        assert.ok(!/^13 INTERNAL: *$/.test(details(outcome)) && details(outcome).length > 0, `a clear error: ${details(outcome)}`);
        assert.notEqual((outcome as { code?: number }).code, 1, 'not CANCELLED');
        // The killed process is named: runc, not conmon (which only saw runc die silently).
        if (kind === 'runc')
          assert.match(
            details(outcome),
            /runc create: .* create ended without a result: runc logged no error and conmon \(pid \d+\) exited with status \d+ without a pid \(runc was killed or crashed\)/,
          );
        // A killed conmon is named as such, with the signal (the shim reaps it: it is its child).
        if (kind === 'conmon')
          assert.match(details(outcome), /runc create: .* create ended without a result: its monitor conmon \(pid \d+\) was killed by signal 9 \(SIGKILL\)/);
        // Nothing half-made is listed.
        assert.deepEqual((await rt().listContainers({ filter: { podSandboxId: pod.id } })).containers, []);
      } else {
        // The create went through (the victim was not on its path any more): the record must
        // hold, i.e. the container starts and runs.
        await rt().startContainer({ containerId: outcome });
        const s = await waitForState(env!, outcome, ContainerState.CONTAINER_RUNNING);
        assert.equal(s.state, ContainerState.CONTAINER_RUNNING);
        await rt().removeContainer({ containerId: outcome });
      }
      // The pod still works: the same name again, created and running.
      const again = (await rt().createContainer({ podSandboxId: pod.id, config: cfg, sandboxConfig: pod.config })).containerId;
      await rt().startContainer({ containerId: again });
      const s = await waitForState(env!, again, ContainerState.CONTAINER_RUNNING);
      const info = JSON.parse((await rt().containerStatus({ containerId: again, verbose: true })).info.info ?? '{}') as { pid?: number };
      assert.ok(info.pid && alive(info.pid), `running container has a live process (${ContainerState[s.state]})`);
      process.stdout.write(`# ${kind}: CreateContainer ${outcome instanceof Error ? `failed: ${details(outcome).slice(0, 200)}` : 'succeeded'}\n`);
    } finally {
      rmSync(hold, { force: true });
      await pod.remove();
    }
    assert.deepEqual(await settledLeaks(env!, baseline, {}, 40_000), []);
  });
}

for (const kind of ['runc', 'conmon', 'berth-shim'] as const) {
  test(
    `kill -9 of ${kind} during the pause's runc create (RunPodSandbox): a clear error, the name is free, nothing leaks`,
    { skip, timeout: 180_000 },
    async () => {
      const name = `pause-${kind}`;
      const config = { metadata: { name, namespace: 'default', uid: `uid-${name}`, attempt: 0 }, hostname: name };
      rmSync(pidFile, { force: true });
      writeFileSync(hold, '');
      let id: string | Error;
      try {
        const run = rt().runPodSandbox({ config, runtimeHandler: 'held' }, { timeoutMs: 120_000 });
        run.catch(() => undefined);
        await until(() => existsSync(pidFile), 'the pause runc create held', 60_000);
        const pid = victim(kind, Number(readFileSync(pidFile, 'utf8')));
        process.kill(pid, 'SIGKILL');
        await until(() => ended(pid), `${kind} ${pid} dead`);
        rmSync(hold, { force: true });
        id = await run.then(
          (r) => r.podSandboxId,
          (e: unknown) => e as Error,
        );
      } finally {
        rmSync(hold, { force: true });
      }
      if (id instanceof Error) {
        assert.ok(details(id).length > 0 && (id as { code?: number }).code !== 1, `a clear error: ${details(id)}`);
        assert.deepEqual(
          (await rt().listPodSandbox({})).items.filter((p) => p.metadata?.name === name),
          [],
          'no half-made pod listed',
        );
        id = (await rt().runPodSandbox({ config, runtimeHandler: 'held' })).podSandboxId;
      }
      const info = JSON.parse((await rt().podSandboxStatus({ podSandboxId: id, verbose: true })).info.info ?? '{}') as { pid?: number };
      assert.ok(info.pid && alive(info.pid), 'the READY pod has a live pause');
      process.stdout.write(`# pause/${kind}: done\n`);
      await rt().stopPodSandbox({ podSandboxId: id });
      await rt().removePodSandbox({ podSandboxId: id });
      assert.deepEqual(await settledLeaks(env!, baseline, {}, 40_000), []);
    },
  );
}
