/**
 * A container that writes a tree 2100 levels deep into its writable layer (issue 12, item 1):
 * ImageFsInfo still answers, RemoveContainer removes the tree on the first call (nothing is
 * left under the snapshots), and berthd restarts.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { until } from '../helpers/process.js';
import { busyboxConfig, runPod, runToExit, type TestPod } from '../helpers/cri-container.js';

let env: CriEnv;
let pod: TestPod;

before(async () => {
  env = await startCriEnv();
  await env.berthd.cri.image.pullImage({ image: { image: env.busybox.ref } });
  pod = await runPod(env);
});

after(async () => {
  await pod?.remove();
  await env?.cleanup();
});

function snapshotDirs(): string[] {
  const base = join(env.berthd.root, 'snapshots');
  const driver = readdirSync(base).find((d) => d === 'overlayfs' || d === 'native')!;
  return readdirSync(join(base, driver, 'snapshots')).sort();
}

test('a 2100-level tree in a writable layer: ImageFsInfo answers, RemoveContainer removes it, berthd restarts', async () => {
  const before = snapshotDirs();
  // Wrap the tree in a new parent 2100 times: every path the shell uses stays short.
  const script =
    'cd /tmp && mkdir x && echo x > x/bottom && i=0; while [ $i -lt 2100 ]; do mkdir w && mv x w/x && mv w x || exit 1; i=$((i+1)); done; echo deep';
  const { id, status, log } = await runToExit(env, pod, busyboxConfig(env, 'deep', ['sh', '-c', script]), 60_000);
  assert.equal(status.exitCode, 0, log.map((l) => l.msg).join('\n'));
  assert.ok(log.some((l) => l.msg === 'deep'));

  const fs = await env.berthd.cri.image.imageFsInfo({});
  assert.ok(fs.imageFilesystems[0]!.inodesUsed!.value >= 2100n, `inodes used: ${fs.imageFilesystems[0]!.inodesUsed!.value}`);

  await env.berthd.cri.runtime.removeContainer({ containerId: id });
  const listed = await env.berthd.cri.runtime.listContainers({});
  assert.ok(!listed.containers.some((c) => c.id === id));
  // The tree goes right after the reply (the record is gone at once).
  await until(() => JSON.stringify(snapshotDirs()) === JSON.stringify(before), 'the writable layer gone, nothing renamed left over', 60_000);
  assert.deepEqual(snapshotDirs(), before);

  await env.berthd.stop();
  await env.berthd.restart();
  const v = await env.berthd.cri.runtime.version({});
  assert.ok(v.runtimeName.length > 0);
});
