/**
 * Containers across a berthd crash: created, running and exited containers keep their ids and
 * states, exits that happen after the restart are recorded, and stop/remove still work.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerState } from '../../src/api/cri/runtime/v1/api_pb.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { busyboxConfig, createContainer, logText, runPod, status, waitForState, type TestPod } from '../helpers/cri-container.js';

let env: CriEnv;
let pod: TestPod;
let gate: string;

before(async () => {
  env = await startCriEnv();
  await env.berthd.cri.image.pullImage({ image: { image: env.busybox.ref } });
  pod = await runPod(env);
  gate = mkdtempSync(join(tmpdir(), 'berth-restart-gate-'));
});

after(async () => {
  await pod?.remove();
  await env?.cleanup();
  rmSync(gate, { recursive: true, force: true });
});

test('created, running and exited containers survive a berthd crash with their states', async () => {
  const rt = () => env.berthd.cri.runtime;
  const created = await createContainer(env, pod, busyboxConfig(env, 'created', ['true']));
  const running = await createContainer(env, pod, busyboxConfig(env, 'running', ['sleep', '300']));
  await rt().startContainer({ containerId: running });
  // Exits once the gate file appears (after the restart).
  const later = await createContainer(
    env,
    pod,
    busyboxConfig(env, 'later', ['sh', '-c', 'echo waiting; while [ ! -f /gate/go ]; do sleep 0.1; done; echo done; exit 4'], {
      mounts: [{ containerPath: '/gate', hostPath: gate, readonly: true }],
    }),
  );
  await rt().startContainer({ containerId: later });
  const exited = await createContainer(env, pod, busyboxConfig(env, 'exited', ['sh', '-c', 'exit 2']));
  await rt().startContainer({ containerId: exited });
  await waitForState(env, exited, ContainerState.CONTAINER_EXITED);
  await waitForState(env, running, ContainerState.CONTAINER_RUNNING);

  await env.berthd.kill9();
  await env.berthd.restart();

  const states = new Map((await rt().listContainers({})).containers.map((c) => [c.id, c.state]));
  assert.equal(states.get(created), ContainerState.CONTAINER_CREATED);
  assert.equal(states.get(running), ContainerState.CONTAINER_RUNNING);
  assert.equal(states.get(later), ContainerState.CONTAINER_RUNNING);
  assert.equal(states.get(exited), ContainerState.CONTAINER_EXITED);
  assert.equal((await status(env, exited)).exitCode, 2);

  // An exit after the restart reaches the record through the reconnected shim.
  writeFileSync(join(gate, 'go'), '');
  const s = await waitForState(env, later, ContainerState.CONTAINER_EXITED, 15_000);
  assert.equal(s.exitCode, 4);
  assert.ok(logText(s.logPath).includes('done'));

  // The created one can still start; stop and remove work on all of them.
  await rt().startContainer({ containerId: created });
  await waitForState(env, created, ContainerState.CONTAINER_EXITED);
  await rt().stopContainer({ containerId: running, timeout: 2n });
  assert.equal((await status(env, running)).state, ContainerState.CONTAINER_EXITED);
  for (const id of [created, running, later, exited]) await rt().removeContainer({ containerId: id });
  const left = (await rt().listContainers({ filter: { podSandboxId: pod.id } })).containers;
  assert.deepEqual(left, []);
});
