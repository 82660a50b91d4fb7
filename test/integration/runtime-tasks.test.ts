/**
 * TaskManager driving real shims and real runc: Debian's containerd-shim-runc-v2 and berth's
 * own shim run the same suite (create/start/wait/kill/exec/delete, events, grouping, stats,
 * a shim killed under a running container). Needs root, runc, busybox-static and a built dist/
 * (bin/containerd-shim-berth-v1 loads dist/src/bin/berth-shim.js).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TaskManager, ExitEvent } from '../../src/runtime/index.js';
import { RuntimeHarness, readAll } from '../helpers/containerd.js';
import { hostHierarchy } from '../helpers/cgroup.js';
const isRoot = process.getuid?.() === 0;
const haveRuncShim = existsSync('/usr/bin/containerd-shim-runc-v2');

for (const runtime of ['runc', 'berth'] as const) {
  describe(
    `TaskManager with ${runtime === 'runc' ? 'containerd-shim-runc-v2' : 'berth-shim'}`,
    { skip: (!isRoot && 'needs root') || (runtime === 'runc' && !haveRuncShim && 'no containerd-shim-runc-v2') },
    () => {
      const h = new RuntimeHarness();
      let tm: TaskManager;
      const ns = h.ns;

      before(async () => {
        tm = h.manager();
        await tm.init();
      });
      after(() => h.cleanup());

      async function run(
        id: string,
        args: string[],
        o: { annotations?: Record<string, string>; start?: boolean } = {},
      ): Promise<{ pid: number; out: Promise<string> }> {
        const c = h.container(id, args, o.annotations);
        const fifo = h.fifo(`${id}.out`);
        const out = readAll(fifo);
        const { pid } = await tm.create({ namespace: ns, id, spec: c.spec, rootfs: c.rootfs, runtime, stdout: fifo, stderr: fifo });
        assert.ok(pid > 0);
        const s = tm.shimOf(ns, id);
        if (s?.pid) h.shimPids.add(s.pid);
        if (o.start !== false) assert.equal(await tm.start(ns, id), pid);
        return { pid, out };
      }

      test('echo output reaches the stdout FIFO; exit 0 via wait, state and the exit event', async () => {
        const { pid, out } = await run('echo', ['echo', 'hi']);
        const w = await tm.wait(ns, 'echo');
        assert.equal(w.exitStatus, 0);
        assert.equal(await out, 'hi\n');
        const ev = await h.event('exit', (e: ExitEvent) => e.containerId === 'echo');
        assert.equal(ev.pid, pid);
        assert.equal(ev.id, '');
        assert.equal(ev.namespace, ns);
        await h.event('start', (e) => e.containerId === 'echo' && e.pid === pid);
        const st = await tm.state(ns, 'echo');
        assert.equal(st.status, 'stopped');
        const d = await tm.delete(ns, 'echo');
        assert.equal(d.exitStatus, 0);
        assert.equal(existsSync(join(h.tmp, 'state/tasks', ns, 'echo')), false, 'bundle removed');
        await assert.rejects(tm.state(ns, 'echo'), { kind: 'NotFound' });
      });

      test('exit code 7 is reported by wait and by the TaskExit event', async () => {
        await run('exit7', ['sh', '-c', 'exit 7']);
        assert.equal((await tm.wait(ns, 'exit7')).exitStatus, 7);
        const ev = await h.event('exit', (e: ExitEvent) => e.containerId === 'exit7');
        assert.equal(ev.exitStatus, 7);
        assert.equal((await tm.delete(ns, 'exit7')).exitStatus, 7);
      });

      test('kill SIGKILL ends a running container with 137', async () => {
        const { pid } = await run('sleeper', ['sleep', '1000']);
        const st = await tm.state(ns, 'sleeper');
        assert.equal(st.status, 'running');
        assert.equal(st.pid, pid);
        const w = tm.wait(ns, 'sleeper');
        await tm.kill(ns, 'sleeper', 9);
        assert.equal((await w).exitStatus, 137);
        await tm.delete(ns, 'sleeper');
      });

      test('exec: output, exit code, execStarted and exit events with the exec id', async () => {
        await run('execbox', ['sleep', '1000']);
        const fifo = h.fifo('exec.out');
        const out = readAll(fifo);
        await tm.exec(
          ns,
          'execbox',
          'e1',
          { args: ['sh', '-c', 'echo from-exec; exit 3'], env: ['PATH=/bin'], cwd: '/', user: { uid: 0, gid: 0 } },
          { stdout: fifo, stderr: fifo },
        );
        const pid = await tm.start(ns, 'execbox', 'e1');
        assert.ok(pid > 0);
        assert.equal((await tm.wait(ns, 'execbox', 'e1')).exitStatus, 3);
        assert.equal(await out, 'from-exec\n');
        await h.event('execStarted', (e) => e.execId === 'e1' && e.pid === pid);
        const ex = await h.event('exit', (e: ExitEvent) => e.containerId === 'execbox' && e.id === 'e1');
        assert.equal(ex.exitStatus, 3);
        assert.equal((await tm.delete(ns, 'execbox', 'e1')).exitStatus, 3);
        const pids = await tm.pids(ns, 'execbox');
        assert.ok(pids.length >= 1);
        const m = await tm.stats(ns, 'execbox');
        assert.equal(m.cgroup, hostHierarchy());
        assert.ok((m.metrics.pids?.current ?? 0n) >= 1n, 'the exec and init are counted in pids.current');
        await tm.kill(ns, 'execbox', 9);
        await tm.wait(ns, 'execbox');
        await tm.delete(ns, 'execbox');
      });

      test(
        runtime === 'berth'
          ? 'every container of the namespace shares the one berth-shim; it stays when idle'
          : 'containers of one pod share a shim; the shim is shut down after the last delete',
        async () => {
          await run('pod-a', ['sleep', '1000'], { annotations: { 'io.kubernetes.cri.sandbox-id': `pod-${runtime}` } });
          await run('pod-b', ['sleep', '1000'], {
            annotations: { 'io.kubernetes.cri.sandbox-id': runtime === 'berth' ? `other-pod-${runtime}` : `pod-${runtime}` },
          });
          const a = tm.shimOf(ns, 'pod-a');
          const b = tm.shimOf(ns, 'pod-b');
          assert.ok(a?.pid && b?.pid);
          assert.equal(a.address, b.address);
          assert.equal(a.pid, b.pid);
          for (const id of ['pod-a', 'pod-b']) {
            await tm.kill(ns, id, 9);
            await tm.wait(ns, id);
            await tm.delete(ns, id);
          }
          if (runtime === 'berth') {
            // Starting a Node process per pod costs ~200 ms of CPU: the node's shim stays. Seen
            // without waiting on a clock: the next container is served by that same process.
            await run('pod-c', ['true'], { annotations: { 'io.kubernetes.cri.sandbox-id': `third-pod-${runtime}` } });
            assert.equal(tm.shimOf(ns, 'pod-c')?.pid, a.pid, 'the idle berth-shim stayed and serves the next container');
            assert.equal(pidAlive(a.pid), true, 'the idle berth-shim stays');
            await tm.wait(ns, 'pod-c');
            await tm.delete(ns, 'pod-c');
            return;
          }
          const deadline = Date.now() + 5000;
          while (Date.now() < deadline && pidAlive(a.pid)) await new Promise((r) => setTimeout(r, 50));
          assert.equal(pidAlive(a.pid), false, 'idle shim exited');
        },
      );

      test(
        runtime === 'berth'
          ? 'a berth-shim killed under a running container: the container runs on, a new shim serves it'
          : 'a shim killed under a running container: wait resolves 255 "shim died", delete cleans up',
        async () => {
          const { pid } = await run('victim', ['sleep', '1000']);
          const s = tm.shimOf(ns, 'victim');
          assert.ok(s?.pid);
          const w = tm.wait(ns, 'victim');
          process.kill(s.pid, 'SIGKILL');
          if (runtime === 'berth') {
            const deadline = Date.now() + 10_000;
            while (Date.now() < deadline && (tm.shimOf(ns, 'victim')?.pid ?? s.pid) === s.pid) await new Promise((r) => setTimeout(r, 50));
            const again = tm.shimOf(ns, 'victim');
            assert.ok(again?.pid && again.pid !== s.pid, 'a new shim');
            h.shimPids.add(again.pid);
            const st = await tm.state(ns, 'victim');
            assert.equal(st.status, 'running');
            assert.equal(st.pid, pid, 'the same process');
            await tm.kill(ns, 'victim', 9);
            assert.equal((await w).exitStatus, 137, 'the real exit reaches the waiter');
            await tm.delete(ns, 'victim');
            return;
          }
          const r = await w;
          assert.equal(r.exitStatus, 255);
          assert.equal(r.reason, 'shim died');
          const ev = await h.event('exit', (e: ExitEvent) => e.containerId === 'victim' && e.reason === 'shim died');
          assert.equal(ev.exitStatus, 255);
          assert.equal((await tm.state(ns, 'victim')).status, 'stopped');
          await tm.kill(ns, 'victim', 9); // no-op on a dead task
          await tm.delete(ns, 'victim');
          // `shim delete` removed the runc container.
          const root = join(h.runcRoot, runtime === 'runc' ? 'v2' : 'berth', ns);
          const left = existsSync(root) ? readdirSync(root) : [];
          assert.equal(left.includes('victim'), false, `runc state left: ${left.join(',')}`);
        },
      );

      test('bad input: unknown runtime, bad id, duplicate id, unknown task', async () => {
        const c = h.container('dup', ['sleep', '1000']);
        await assert.rejects(tm.create({ namespace: ns, id: 'x', spec: c.spec, runtime: 'nope' }), { kind: 'NotFound', code: 'runtime.handler_not_found' });
        await assert.rejects(tm.create({ namespace: ns, id: '../x', spec: c.spec, runtime }), { kind: 'InvalidArgument' });
        await tm.create({ namespace: ns, id: 'dup', spec: c.spec, rootfs: c.rootfs, runtime });
        await assert.rejects(tm.create({ namespace: ns, id: 'dup', spec: c.spec, rootfs: c.rootfs, runtime }), { kind: 'AlreadyExists' });
        await assert.rejects(tm.start(ns, 'missing'), { kind: 'NotFound' });
        await tm.delete(ns, 'dup');
        assert.equal(existsSync(join(h.tmp, 'state/tasks', ns, 'dup')), false);
      });
    },
  );
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
