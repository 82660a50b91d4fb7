/**
 * Containers survive berthd: a child process runs a TaskManager, starts containers and is
 * killed with SIGKILL (no cleanup); a new TaskManager.init() on the same state dir reconnects,
 * sees the running container, an exit that happened while nobody listened, and a container
 * whose shim died meanwhile — and can still kill and delete all of them.
 * The child is this same file, run with BERTH_RT_RECOVERY_CHILD set.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { TaskManager } from '../../src/runtime/index.js';
import { RuntimeHarness } from '../helpers/containerd.js';
import { ended, until } from '../helpers/process.js';

interface ChildPlan {
  stateDir: string;
  rootDir: string;
  handlers: ConstructorParameters<typeof TaskManager>[0]['handlers'];
  shimEnv: Record<string, string>;
  ns: string;
  runtime: string;
  containers: Array<{ id: string; spec: Record<string, unknown>; rootfs: Array<{ type: string; source: string; options: string[] }> }>;
}

async function childMain(plan: ChildPlan): Promise<void> {
  const tm = new TaskManager({ stateDir: plan.stateDir, rootDir: plan.rootDir, handlers: plan.handlers, shimEnv: plan.shimEnv });
  await tm.init();
  const out: Record<string, { pid: number; shimPid: number | undefined }> = {};
  for (const c of plan.containers) {
    const { pid } = await tm.create({ namespace: plan.ns, id: c.id, spec: c.spec, rootfs: c.rootfs, runtime: plan.runtime });
    await tm.start(plan.ns, c.id);
    out[c.id] = { pid, shimPid: tm.shimOf(plan.ns, c.id)?.pid };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  // Stay alive until the parent kills us like `kill -9 berthd`.
  setInterval(() => undefined, 1 << 30);
}

const childPlan = process.env.BERTH_RT_RECOVERY_CHILD;
if (childPlan) {
  childMain(JSON.parse(childPlan) as ChildPlan).catch((err: unknown) => {
    process.stderr.write(`child failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
} else {
  const isRoot = process.getuid?.() === 0;
  for (const runtime of ['runc', 'berth'] as const) {
    describe(`berthd restart with ${runtime === 'runc' ? 'containerd-shim-runc-v2' : 'berth-shim'}`, { skip: !isRoot && 'needs root' }, () => {
      const h = new RuntimeHarness();
      after(() => h.cleanup());

      test('a new TaskManager reconnects to running containers and reports what ended meanwhile', async () => {
        const ns = h.ns;
        // Separate groups, so killing one shim leaves the others alone.
        const containers = [
          { id: 'survivor', ...h.container('survivor', ['sleep', '1000']) },
          { id: 'quitter', ...h.container('quitter', ['sh', '-c', 'sleep 0.3; exit 4']) },
          { id: 'orphan', ...h.container('orphan', ['sleep', '1000']) },
        ];
        const plan: ChildPlan = {
          stateDir: join(h.tmp, 'state'),
          rootDir: join(h.tmp, 'root'),
          handlers: h.handlers(),
          shimEnv: { BERTH_RUNC_ROOT: join(h.runcRoot, 'berth') },
          ns,
          runtime,
          containers,
        };
        const child = spawn(process.execPath, [...process.execArgv.filter((a) => !a.startsWith('--test')), import.meta.filename], {
          env: { ...process.env, BERTH_RT_RECOVERY_CHILD: JSON.stringify(plan) },
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        const line = await new Promise<string>((res, rej) => {
          let buf = '';
          child.stdout.on('data', (d: Buffer) => {
            buf += d.toString();
            if (buf.includes('\n')) res(buf.split('\n')[0] as string);
          });
          child.once('exit', (code) => rej(new Error(`child exited ${code} before reporting`)));
        });
        const started = JSON.parse(line) as Record<string, { pid: number; shimPid: number | undefined }>;
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
        const orphanShim = started.orphan?.shimPid;
        assert.ok(orphanShim && started.survivor?.shimPid);
        // berth-shim is one per namespace and conmon keeps its containers: killing it loses nothing.
        const berth = runtime === 'berth';
        if (berth) assert.equal(orphanShim, started.survivor.shimPid);
        else assert.notEqual(orphanShim, started.survivor.shimPid);
        for (const c of Object.values(started)) if (c.shimPid) h.shimPids.add(c.shimPid);
        process.kill(orphanShim, 'SIGKILL');
        await until(() => ended(started.quitter!.pid), 'the quitter to exit while no berthd listens');

        const tm = h.manager();
        const recovered = await tm.init();
        const by = new Map(recovered.map((r) => [r.id, r]));
        assert.deepEqual([...by.keys()].sort(), ['orphan', 'quitter', 'survivor']);
        assert.equal(by.get('survivor')?.state.status, 'running');
        assert.equal(by.get('survivor')?.state.pid, started.survivor.pid);
        assert.equal(by.get('quitter')?.state.status, 'stopped');
        assert.equal(by.get('quitter')?.state.exitStatus, 4);
        if (berth) {
          assert.equal(by.get('orphan')?.state.status, 'running', 'a new berth-shim took the container over');
          assert.equal(by.get('orphan')?.state.pid, started.orphan?.pid);
          await h.event('exit', (e) => e.containerId === 'quitter' && e.exitStatus === 4);
          await tm.kill(ns, 'orphan', 9);
          assert.equal((await tm.wait(ns, 'orphan')).exitStatus, 137);
        } else {
          assert.equal(by.get('orphan')?.state.status, 'stopped');
          assert.equal(by.get('orphan')?.state.exitStatus, 255);
          assert.match(by.get('orphan')?.state.reason ?? '', /shim died/);
          await h.event('exit', (e) => e.containerId === 'orphan' && e.exitStatus === 255);
        }

        // The reconnected shim is fully usable.
        assert.equal((await tm.state(ns, 'survivor')).status, 'running');
        const w = tm.wait(ns, 'survivor');
        await tm.kill(ns, 'survivor', 9);
        assert.equal((await w).exitStatus, 137);
        await h.event('exit', (e) => e.containerId === 'survivor' && e.exitStatus === 137);
        assert.equal((await tm.wait(ns, 'quitter')).exitStatus, 4);
        for (const id of ['survivor', 'quitter', 'orphan']) await tm.delete(ns, id);
        assert.deepEqual(readdirSync(join(h.tmp, 'state/tasks', ns)), []);
        const runcRoot = join(h.runcRoot, runtime === 'runc' ? 'v2' : 'berth', ns);
        assert.deepEqual(existsSync(runcRoot) ? readdirSync(runcRoot) : [], []);
      });
    });
  }
}
