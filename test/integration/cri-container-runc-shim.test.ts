/**
 * Containers on Debian's containerd-shim-runc-v2 (a shim that writes raw bytes): berthd hands
 * it FIFOs and writes the CRI log format itself.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ContainerState } from '../../src/api/cri/runtime/v1/api_pb.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { until } from '../helpers/process.js';
import { busyboxConfig, createContainer, logText, readCriLog, runPod, runToExit, status, waitForState, type TestPod } from '../helpers/cri-container.js';

const SHIM = '/usr/bin/containerd-shim-runc-v2';
let env: CriEnv;
let pod: TestPod;

before(async () => {
  env = await startCriEnv({ extraToml: `[runtimes.runcv2]\ntype = "io.containerd.runc.v2"\n` });
  await env.berthd.cri.image.pullImage({ image: { image: env.busybox.ref } });
  pod = await runPod(env, {}, 'runcv2');
});

after(async () => {
  await pod?.remove();
  await env?.cleanup();
});

test('containerd-shim-runc-v2 containers get a CRI-format log written by berthd', { skip: !existsSync(SHIM) && `${SHIM} missing` }, async () => {
  const { id, status: s, log } = await runToExit(env, pod, busyboxConfig(env, 'raw', ['sh', '-c', 'echo one; echo two >&2; printf "no-newline"']));
  try {
    assert.equal(s.exitCode, 0);
    assert.equal(s.reason, 'Completed');
    assert.deepEqual(log.map((l) => `${l.stream} ${l.tag} ${l.msg}`).sort(), ['stderr F two', 'stdout F no-newline', 'stdout F one']);
  } finally {
    await env.berthd.cri.runtime.removeContainer({ containerId: id });
  }
});

test('ReopenContainerLog on a daemon-forwarded log starts a new file after rotation', { skip: !existsSync(SHIM) && `${SHIM} missing` }, async () => {
  const id = await createContainer(env, pod, busyboxConfig(env, 'rotated', ['sh', '-c', 'i=0; while :; do i=$((i+1)); echo line$i; sleep 0.1; done']));
  try {
    await env.berthd.cri.runtime.startContainer({ containerId: id });
    const s = await waitForState(env, id, ContainerState.CONTAINER_RUNNING);
    const deadline = Date.now() + 10_000;
    while (readCriLog(s.logPath).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const { renameSync } = await import('node:fs');
    renameSync(s.logPath, `${s.logPath}.1`);
    await env.berthd.cri.runtime.reopenContainerLog({ containerId: id });
    while (readCriLog(s.logPath).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(readCriLog(s.logPath).length >= 2, 'new log file gets lines');
    assert.ok(logText(`${s.logPath}.1`).includes('line1'));
    assert.equal((await status(env, id)).state, ContainerState.CONTAINER_RUNNING);
  } finally {
    await env.berthd.cri.runtime.removeContainer({ containerId: id });
  }
  // RemoveContainer replies once the record is gone; its dirs go right after (deferred removal).
  await until(() => !existsSync(join(env.berthd.state, 'containers', id)), 'FIFO dir removed');
});

test('after a berthd crash the log of a running runc-v2 container keeps being written', { skip: !existsSync(SHIM) && `${SHIM} missing` }, async () => {
  const id = await createContainer(env, pod, busyboxConfig(env, 'survivor', ['sh', '-c', 'i=0; while :; do i=$((i+1)); echo tick$i; sleep 0.1; done']));
  try {
    await env.berthd.cri.runtime.startContainer({ containerId: id });
    const s = await waitForState(env, id, ContainerState.CONTAINER_RUNNING);
    const until = async (cond: () => boolean): Promise<void> => {
      const deadline = Date.now() + 15_000;
      while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    };
    await until(() => readCriLog(s.logPath).length >= 2);
    await env.berthd.kill9();
    await env.berthd.restart();
    const before = readCriLog(s.logPath).length;
    await until(() => readCriLog(s.logPath).length >= before + 5);
    assert.ok(readCriLog(s.logPath).length >= before + 5, 'lines keep arriving after the restart');
    assert.equal((await status(env, id)).state, ContainerState.CONTAINER_RUNNING);
  } finally {
    await env.berthd.cri.runtime.removeContainer({ containerId: id });
  }
});
