/**
 * Disk full (issue 12), on small tmpfs mounts made for the test: berth's content dir during a
 * pull (the pull fails with RESOURCE_EXHAUSTED naming the cause, no image record, no ingest
 * leftover, the daemon keeps serving; once the filesystem grows the same pull succeeds and the
 * image runs), and a pod's log directory while a container writes its log (the container keeps
 * running and its records stay true; once space returns new lines reach the log again, in
 * CRI format).
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerState } from '../../src/api/cri/runtime/v1/api_pb.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { busyboxConfig, waitForState } from '../helpers/cri-container.js';
import { isRoot, uniqueTag } from '../helpers/netns.js';
import { alive, until } from '../helpers/process.js';

const skip = !isRoot() ? 'needs root' : false;
let env: CriEnv | undefined;
const mounts: string[] = [];
const dirs: string[] = [];

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}
function mountTmpfs(at: string, bytes: number): void {
  sh('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'berth-fault-tmpfs', at]);
  mounts.push(at);
}
const grow = (at: string) => sh('mount', ['-o', 'remount,size=256m', at]);
function used(at: string): number {
  const s = statfsSync(at);
  return (s.blocks - s.bfree) * s.bsize;
}

before(async () => {
  if (skip) return;
  env = await startCriEnv();
});
after(async () => {
  await env?.cleanup().catch(() => undefined);
  for (const m of mounts.reverse()) spawnSync('umount', ['-l', m]);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const rt = () => env!.berthd.cri.runtime;
const details = (err: unknown) => String((err as { details?: string }).details ?? (err as Error).message);

test(
  'disk full in the content store during a pull: RESOURCE_EXHAUSTED, nothing recorded, the pull succeeds once space returns',
  { skip, timeout: 180_000 },
  async () => {
    const e = env!;
    // Nothing pulled yet (pause and busybox share their one layer). The content dir moves onto a
    // tmpfs with room for what it holds plus 256 KiB (less than busybox's layer); berthd restarts on it.
    await e.berthd.stop();
    const content = join(e.berthd.root, 'content');
    const saved = `${content}.saved`;
    renameSync(content, saved);
    spawnSync('mkdir', ['-m', '0700', content]);
    const room = Number(spawnSync('du', ['-sb', saved], { encoding: 'utf8' }).stdout.split('\t')[0]) + (256 << 10);
    mountTmpfs(content, room);
    cpSync(saved, content, { recursive: true });
    rmSync(saved, { recursive: true, force: true });
    const before = used(content);
    await e.berthd.restart();
    const limit = statfsSync(content).blocks * statfsSync(content).bsize;
    assert.ok(e.busybox.layers.reduce((n, l) => n + l.size, 0) > limit - before, 'the image does not fit');

    const pulled = e.berthd.cri.image.pullImage({ image: { image: e.busybox.ref } });
    await assert.rejects(pulled, (err) => {
      assert.equal((err as { code?: number }).code, 8, `RESOURCE_EXHAUSTED, got: ${details(err)}`);
      assert.match(details(err), /no space left on device/);
      return true;
    });
    const st = await e.berthd.cri.image.imageStatus({ image: { image: e.busybox.ref } });
    assert.equal(st.image, undefined, 'no image record');
    assert.deepEqual(readdirSync(join(content, 'ingest')), [], 'no ingest leftover');
    assert.ok((await rt().version({})).runtimeName, 'berthd keeps serving');

    grow(content);
    await e.berthd.cri.image.pullImage({ image: { image: e.busybox.ref } });
    const pod = (await rt().runPodSandbox({ config: { metadata: { name: 'disk-full-pull', namespace: 'default', uid: `uid-${uniqueTag()}`, attempt: 0 } } }))
      .podSandboxId;
    const c = (
      await rt().createContainer({
        podSandboxId: pod,
        config: busyboxConfig(e, 'c', ['true']),
        sandboxConfig: { metadata: { name: 'disk-full-pull', namespace: 'default', uid: 'x', attempt: 0 } },
      })
    ).containerId;
    await rt().startContainer({ containerId: c });
    const s = await waitForState(e, c, ContainerState.CONTAINER_EXITED);
    assert.equal(s.exitCode, 0, 'the image pulled after the disk filled runs');
    await rt().stopPodSandbox({ podSandboxId: pod });
    await rt().removePodSandbox({ podSandboxId: pod });
  },
);

test(
  'disk full in the log directory: the container keeps running, records stay true, logging resumes once space returns',
  { skip, timeout: 180_000 },
  async () => {
    const e = env!;
    await e.berthd.cri.image.pullImage({ image: { image: e.busybox.ref } });
    const logDir = mkdtempSync(join(tmpdir(), 'berth-fault-logs-'));
    dirs.push(logDir);
    mountTmpfs(logDir, 64 << 10);
    const podCfg = { metadata: { name: 'disk-full-log', namespace: 'default', uid: `uid-${uniqueTag()}`, attempt: 0 }, logDirectory: logDir };
    const pod = (await rt().runPodSandbox({ config: podCfg })).podSandboxId;
    // 2000 fast lines (≈ 200 KB: more than the 64 KiB), then a numbered line every 50 ms.
    const script =
      'i=0; while [ $i -lt 2000 ]; do echo "fill-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"; i=$((i+1)); done; ' +
      'while true; do echo "tick-$i"; i=$((i+1)); sleep 0.05; done';
    const c = (await rt().createContainer({ podSandboxId: pod, config: busyboxConfig(e, 'w', ['sh', '-c', script]), sandboxConfig: podCfg })).containerId;
    await rt().startContainer({ containerId: c });
    const s = await waitForState(e, c, ContainerState.CONTAINER_RUNNING);
    const logFile = s.logPath;
    await until(() => statfsSync(logDir).bavail === 0, 'the log filesystem full', 60_000);

    // Full: berthd answers, the container is running with a live process.
    const full = await rt().containerStatus({ containerId: c, verbose: true });
    assert.equal(full.status?.state, ContainerState.CONTAINER_RUNNING);
    const pid = (JSON.parse(full.info.info ?? '{}') as { pid?: number }).pid;
    assert.ok(pid && alive(pid), 'the container process lives');

    grow(logDir);
    const ticksNow = () =>
      readFileSync(logFile, 'utf8')
        .split('\n')
        .filter((l) => / tick-\d+$/.test(l));
    await until(() => ticksNow().length >= 5, 'new lines logged after space returned', 60_000);
    // conmon's write of the line in flight when the disk filled came up short: that one record is
    // torn (no newline), so the first line written after recovery follows it on the same line.
    // Every later line is a whole CRI log line.
    const tickLines = readFileSync(logFile, 'utf8')
      .split('\n')
      .filter((x) => x.includes('tick-'));
    assert.ok(tickLines.length >= 5);
    assert.match(
      tickLines[0]!,
      /^(?:\S+ stdout [FP] fill-\d+-x*)?\S+ stdout F tick-\d+$/,
      'the first line after recovery is a CRI log line, behind at most one torn record',
    );
    for (const l of tickLines.slice(1)) assert.match(l, /^\S+ stdout F tick-\d+$/, 'lines after recovery are CRI log lines');
    // A log rotation (kubelet's) works on the recovered filesystem.
    renameSync(logFile, `${logFile}.1`);
    await rt().reopenContainerLog({ containerId: c });
    await until(
      () => {
        try {
          return readFileSync(logFile, 'utf8').includes('tick-');
        } catch {
          return false;
        }
      },
      'lines in the reopened log',
      30_000,
    );
    await rt().stopPodSandbox({ podSandboxId: pod });
    await rt().removePodSandbox({ podSandboxId: pod });
  },
);
