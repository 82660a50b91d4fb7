// ExecSync and CheckpointContainer handler flows without root, over the fake task layer
// (test/helpers/fakes/tasks.ts: exec processes that write to berthd's real FIFOs, a checkpoint
// a test can hold) and the ManualClock: a timeout of N seconds fires when the test clock passes
// N s and not a millisecond before, in no real time. The timeout is on ctx.clock (issue 13,
// "timers injectable"): were it a real setTimeout, the clock would hold no timer and these
// tests would time out waiting for one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { closeSync, createReadStream } from 'node:fs';
import tar from 'tar-stream';
import { execSync } from '../../src/cri/stream/exec-sync.js';
import { checkpointContainer } from '../../src/cri/container/checkpoint.js';
import { bundlePaths } from '../../src/runtime/index.js';
import { BerthError } from '../../src/errors.js';
import { newTestContext, putRunningContainer, type TestRuntime } from '../helpers/fakes/context.js';
import { until } from '../helpers/process.js';

const NS = 'k8s.io';
const SIGKILL = 9;
const call = (signal = new AbortController().signal) => ({ namespace: NS, signal });

/** A running container: its record, its fake task and its bundle's config.json (exec reads it). */
async function runningContainer(rt: TestRuntime, cid = 'c'.repeat(64)): Promise<string> {
  const { dir } = bundlePaths(rt.ctx.settings.state, rt.ctx.settings.root, NS, cid);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify({ ociVersion: '1.0.2', process: { args: ['sleep', 'inf'], cwd: '/', env: ['PATH=/bin'] } }));
  await putRunningContainer(rt, NS, cid, 's'.repeat(64));
  return cid;
}

const execSyncReq = (containerId: string, cmd: string[], timeout: number) =>
  ({ $typeName: 'runtime.v1.ExecSyncRequest', containerId, cmd, timeout: BigInt(timeout) }) as const;

const checkpointReq = (containerId: string, location: string, timeout: number) =>
  ({ $typeName: 'runtime.v1.CheckpointContainerRequest', containerId, location, timeout: BigInt(timeout) }) as const;

/** Lets everything already runnable run (promise jobs and I/O callbacks), several turns over. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

const deadlineExceeded = (code: string) => (err: unknown) => err instanceof BerthError && err.kind === 'DeadlineExceeded' && err.code === code;

test('ExecSync returns the output and exit code of a command that exits; its timeout timer is cancelled', async (t) => {
  const rt = await newTestContext(t);
  const cid = await runningContainer(rt);
  rt.tasks.execScript = (args) => ({ stdout: `ran ${args.join(' ')}\n`, stderr: 'warn\n', exitCode: 3 });
  const r = await execSync(rt.ctx)(execSyncReq(cid, ['echo', 'hi'], 30), call());
  assert.equal(Buffer.from(r.stdout!).toString(), 'ran echo hi\n');
  assert.equal(Buffer.from(r.stderr!).toString(), 'warn\n');
  assert.equal(r.exitCode, 3);
  assert.equal(rt.clock.pending(), 0, 'no timer left behind');
  assert.deepEqual(rt.tasks.execsOf(NS, cid), [], 'the exec process was deleted');
  assert.deepEqual(await readdir(join(rt.ctx.settings.state, 'exec')), [], 'its FIFOs are gone');
});

// The timeout only guards the old behaviour (the call never ended); nothing here is timed.
test('ExecSync cancelled while its exec was starting kills the command and fails Canceled (no abort event comes any more)', { timeout: 30_000 }, async (t) => {
  const rt = await newTestContext(t);
  const cid = await runningContainer(rt);
  rt.tasks.execScript = () => ({ stdout: 'started\n' });
  const ac = new AbortController();
  // The client goes away as the exec starts (before ExecSync listens for it).
  const start = rt.tasks.exec.bind(rt.tasks);
  rt.tasks.exec = (async (...args: Parameters<typeof start>) => {
    const r = await start(...args);
    ac.abort();
    return r;
  }) as typeof start;
  const replying = execSync(rt.ctx)(execSyncReq(cid, ['sleep', 'inf'], 0), call(ac.signal));
  await assert.rejects(replying, (err: unknown) => err instanceof BerthError && err.kind === 'Canceled');
  assert.deepEqual(rt.tasks.execsOf(NS, cid), [], 'the exec process was killed and deleted');
});

test('ExecSync with timeout=N kills the command when the test clock passes N s, not before, and fails DeadlineExceeded', { timeout: 30_000 }, async (t) => {
  const rt = await newTestContext(t);
  const cid = await runningContainer(rt);
  // Prints something, then runs until killed. One hour: a real timer would never fire here.
  rt.tasks.execScript = () => ({ stdout: 'started\n' });
  const N = 3600;
  let settled = false;
  const replying = execSync(rt.ctx)(execSyncReq(cid, ['sleep', 'inf'], N), call()).finally(() => (settled = true));
  replying.catch(() => undefined);
  await until(() => rt.clock.pending() === 1, 'the ExecSync timeout on the test clock');
  const [proc] = rt.tasks.execsOf(NS, cid);
  assert.ok(proc && proc.status === 'running', 'the command runs');

  rt.clock.advance(N * 1000 - 1);
  await settle();
  assert.equal(settled, false, 'no reply 1 ms before the timeout');
  assert.deepEqual(proc.signals, [], 'not killed before the timeout');

  rt.clock.advance(1);
  await assert.rejects(replying, deadlineExceeded('exec.timeout'));
  assert.deepEqual(proc.signals, [SIGKILL], 'SIGKILLed at the timeout');
  assert.equal(proc.exit?.exitStatus, 128 + SIGKILL);
  assert.deepEqual(rt.tasks.execsOf(NS, cid), [], 'the killed exec was deleted');
  assert.deepEqual(await readdir(join(rt.ctx.settings.state, 'exec')), [], 'its FIFOs are gone');
  assert.equal(rt.clock.pending(), 0, 'no timer left behind');
});

test('ExecSync: a command whose output a child keeps open answers at the 2 s drain cap after its exit, on the test clock', { timeout: 30_000 }, async (t) => {
  const rt = await newTestContext(t);
  const cid = await runningContainer(rt);
  rt.tasks.execScript = () => ({ stdout: 'out\n' });
  const replying = execSync(rt.ctx)(execSyncReq(cid, ['sh', '-c', 'sleep inf &'], 0), call());
  await until(() => rt.tasks.execsOf(NS, cid)[0]?.status === 'running', 'the command to run');
  const proc = rt.tasks.execsOf(NS, cid)[0]!;
  // The process exits but something it started still holds stdout: only the drain cap ends the read.
  const held = proc.fds.splice(0);
  t.after(() => held.forEach((fd) => closeSync(fd)));
  rt.tasks.execExit(NS, cid, proc.execId, 0);
  await until(() => rt.clock.pending() === 1, 'the output drain cap on the test clock');
  let settled = false;
  void replying.finally(() => (settled = true)).catch(() => undefined);
  rt.clock.advance(1999);
  await settle();
  assert.equal(settled, false, 'still draining 1 ms before the cap');
  rt.clock.advance(1);
  const r = await replying;
  assert.equal(Buffer.from(r.stdout!).toString(), 'out\n');
  assert.equal(r.exitCode, 0);
});

test('CheckpointContainer writes the archive: checkpoint/, spec.dump, config.dump', async (t) => {
  const rt = await newTestContext(t);
  const cid = await runningContainer(rt);
  const location = join(rt.dir, 'out', 'cp.tar');
  await checkpointContainer(rt.ctx)(checkpointReq(cid, location, 60), call());
  const names: string[] = [];
  const extract = tar.extract();
  extract.on('entry', (h, stream, next) => {
    names.push(h.name);
    stream.resume();
    stream.on('end', next);
  });
  await new Promise<void>((resolve, reject) => {
    extract.on('finish', resolve);
    extract.on('error', reject);
    createReadStream(location).pipe(extract);
  });
  assert.deepEqual(names.sort(), ['checkpoint/', 'checkpoint/inventory.img', 'config.dump', 'spec.dump']);
  assert.equal(rt.clock.pending(), 0, 'no timer left behind');
  assert.deepEqual(await readdir(join(rt.ctx.settings.root, 'checkpoints')), [], 'the work dir is gone');
});

test('CheckpointContainer with timeout=N fails DeadlineExceeded when the test clock passes N s, not before', { timeout: 30_000 }, async (t) => {
  const rt = await newTestContext(t);
  const cid = await runningContainer(rt);
  const criu = rt.faults.hold('tasks.checkpoint');
  const location = join(rt.dir, 'cp.tar');
  const N = 3600;
  let settled = false;
  const replying = checkpointContainer(rt.ctx)(checkpointReq(cid, location, N), call()).finally(() => (settled = true));
  replying.catch(() => undefined);
  await criu.reached;
  await until(() => rt.clock.pending() === 1, 'the checkpoint timeout on the test clock');

  rt.clock.advance(N * 1000 - 1);
  await settle();
  assert.equal(settled, false, 'no reply 1 ms before the timeout');

  rt.clock.advance(1);
  await assert.rejects(replying, deadlineExceeded('checkpoint.timeout'));
  assert.deepEqual(await readdir(join(rt.ctx.settings.root, 'checkpoints')), [], 'the work dir is gone');
  assert.deepEqual(await readdir(rt.dir).then((d) => d.filter((n) => n.startsWith('cp.tar'))), [], 'no archive, not even a temp one');
  // CRIU finishing late changes nothing (the dump is not waited for).
  criu.release();
  await settle();
  assert.equal(rt.clock.pending(), 0);
});
