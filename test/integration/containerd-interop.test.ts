/**
 * Interop with a real containerd (Debian's 1.6): `ctr run --rootfs` drives berth's shim
 * (containerd-shim-berth-v1 on PATH) exactly as it drives containerd-shim-runc-v2 — output,
 * exit codes, and the events containerd receives from the shim over TTRPC_ADDRESS.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Containerd } from '../helpers/containerd.js';

const isRoot = process.getuid?.() === 0;
const haveContainerd = existsSync('/usr/bin/containerd') && existsSync('/usr/bin/ctr');

for (const runtime of ['io.containerd.runc.v2', 'io.containerd.berth.v1']) {
  describe(`containerd + ${runtime}`, { skip: (!isRoot && 'needs root') || (!haveContainerd && 'containerd not installed') }, () => {
    const c = new Containerd();
    before(() => c.start());
    after(() => c.stop());

    test('ctr run --rm prints the container output', () => {
      const r = c.ctr([
        'run',
        '--rm',
        '--runtime',
        runtime,
        '--fifo-dir',
        `${c.tmp}/fifo`,
        '--env',
        'PATH=/bin',
        '--rootfs',
        c.rootfs('hi'),
        'hi',
        'echo',
        'hi',
      ]);
      assert.equal(r.code, 0, `ctr failed: ${r.stderr}\n${c.log.slice(-3000)}`);
      assert.equal(r.stdout, 'hi\n');
    });

    test('ctr run returns the container exit code 7', () => {
      const r = c.ctr([
        'run',
        '--rm',
        '--runtime',
        runtime,
        '--fifo-dir',
        `${c.tmp}/fifo`,
        '--env',
        'PATH=/bin',
        '--rootfs',
        c.rootfs('seven'),
        'seven',
        'sh',
        '-c',
        'exit 7',
      ]);
      assert.equal(r.code, 7, `ctr: ${r.stderr}\n${c.log.slice(-3000)}`);
    });

    test('ctr run -t runs on a terminal, interactively (input typed on the pty reaches the shell)', () => {
      // `script` gives ctr a real pty as its stdin/stdout, as a person at a terminal would.
      const cmd = [
        'ctr',
        '--address',
        c.address,
        '-n',
        c.ns,
        'run',
        '-t',
        '--rm',
        '--runtime',
        runtime,
        '--fifo-dir',
        `${c.tmp}/fifo`,
        '--env',
        'PATH=/bin',
        '--rootfs',
        c.rootfs('tty'),
        'tty',
        'sh',
      ]
        .map((a) => `'${a}'`)
        .join(' ');
      const r = spawnSync('script', ['-qec', cmd, '/dev/null'], {
        env: c.env,
        encoding: 'utf8',
        timeout: 60_000,
        input: 'tty; echo answer-$((6*7)); exit 5\n',
      });
      assert.equal(r.status, 5, `script/ctr: ${r.stderr}\n${r.stdout}\n${c.log.slice(-3000)}`);
      assert.match(r.stdout, /\/dev\/pts\/\d+/, 'the shell runs on a terminal');
      assert.match(r.stdout, /answer-42/, 'typed input reached the shell and its output came back');
    });

    test("a detached task can be exec'd into, killed and deleted; containerd's own event stream carries the TaskExit", async () => {
      const run = c.ctr([
        'run',
        '-d',
        '--runtime',
        runtime,
        '--fifo-dir',
        `${c.tmp}/fifo`,
        '--env',
        'PATH=/bin',
        '--rootfs',
        c.rootfs('bg'),
        'bg',
        'sleep',
        '1000',
      ]);
      assert.equal(run.code, 0, run.stderr);
      const ex = c.ctr(['tasks', 'exec', '--fifo-dir', `${c.tmp}/fifo`, '--exec-id', 'x1', 'bg', '/bin/sh', '-c', 'echo in-exec; exit 3']);
      assert.equal(ex.code, 3, ex.stderr);
      assert.equal(ex.stdout, 'in-exec\n');
      const ls = c.ctr(['tasks', 'ls']);
      assert.match(ls.stdout, /bg\s+\d+\s+RUNNING/);
      // containerd's own event stream, as any containerd client sees it.
      const events = spawn('ctr', ['--address', c.address, '-n', c.ns, 'events'], { env: c.env, stdio: ['ignore', 'pipe', 'ignore'] });
      let stream = '';
      events.stdout.on('data', (d: Buffer) => (stream += d.toString()));
      // Subscribed once it shows an event: pause/resume the task until /tasks/paused appears.
      for (let i = 0; !/\/tasks\/paused/.test(stream); i++) {
        assert.ok(i < 50, 'ctr events is subscribed');
        assert.equal(c.ctr(['tasks', 'pause', 'bg']).code, 0);
        assert.equal(c.ctr(['tasks', 'resume', 'bg']).code, 0);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(c.ctr(['tasks', 'kill', '-s', 'SIGKILL', 'bg']).code, 0);
      let st = '';
      for (let i = 0; i < 50 && !/STOPPED/.test(st); i++) {
        st = c.ctr(['tasks', 'ls']).stdout;
        spinWait(100);
      }
      assert.match(st, /bg\s+\d+\s+STOPPED/, 'containerd sees the task stopped');
      const until = Date.now() + 10_000;
      while (!/\/tasks\/exit .*"container_id":"bg".*"exit_status":137/.test(stream) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      events.kill();
      assert.match(stream, /\/tasks\/exit .*"container_id":"bg".*"exit_status":137/, `the shim's TaskExit reached containerd's event stream:\n${stream}`);
      assert.equal(c.ctr(['tasks', 'delete', 'bg']).code, 0);
      assert.equal(c.ctr(['containers', 'delete', 'bg']).code, 0);
    });
  });
}

function spinWait(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
