/**
 * scripts/install.sh and scripts/uninstall.sh, as a node operator uses them, in a temp prefix,
 * bindir, config path and unit dir: the installed berthd runs from the installed tree (not this
 * checkout), the unit passes `systemd-analyze verify`, a second install is an upgrade beside the
 * first, an existing config is never overwritten, and uninstall leaves the directories exactly
 * as they were.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { repoRoot, startBerthd } from '../helpers/berthd.js';
import { validateConfig } from '../../src/daemon/config.js';

const skip = process.getuid?.() !== 0 ? 'needs root (berthd manages mounts and namespaces)' : false;
const COMMANDS = ['berthd', 'berth', 'berth-shim', 'containerd-shim-berth-v1'];
const systemdAnalyze = spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).status === 0;

interface Layout {
  top: string;
  prefix: string;
  bindir: string;
  config: string;
  unitdir: string;
}

function layout(): Layout {
  const top = mkdtempSync(join(tmpdir(), 'berth-install-'));
  return {
    top,
    prefix: join(top, 'opt', 'berth'),
    bindir: join(top, 'usr', 'local', 'bin'),
    config: join(top, 'etc', 'berth', 'berth.toml'),
    unitdir: join(top, 'etc', 'systemd', 'system'),
  };
}

function run(script: string, args: string[]): { status: number | null; out: string } {
  // --no-build: the test runs from this checkout's build (npm run build came first); rebuilding
  // dist/ under a running test suite would only cost CPU.
  const r = spawnSync(join(repoRoot(), 'scripts', script), args, { encoding: 'utf8', timeout: 300_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const install = (l: Layout, ...extra: string[]) =>
  run('install.sh', ['--prefix', l.prefix, '--bindir', l.bindir, '--config', l.config, '--unitdir', l.unitdir, '--no-build', ...extra]);
const uninstall = (l: Layout, ...extra: string[]) => run('uninstall.sh', ['--prefix', l.prefix, ...extra]);

/** Every path under `dir` with its type, mode and (files) content hash / (links) target. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (p: string, rel: string) => {
    const st = lstatSync(p);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out.push(`${rel} link ${readlinkSync(p)}`);
    else if (st.isDirectory()) {
      out.push(`${rel} dir ${mode}`);
      for (const n of readdirSync(p).sort()) walk(join(p, n), `${rel}/${n}`);
    } else out.push(`${rel} file ${mode} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`);
  };
  walk(dir, '.');
  return out;
}

test('install → run the installed berthd → upgrade → uninstall leaves the directories as they were', { skip, timeout: 600_000 }, async () => {
  const l = layout();
  // What was there before must stay: an existing bin dir with someone else's tool, an empty /etc.
  mkdirSync(l.bindir, { recursive: true });
  writeFileSync(join(l.bindir, 'other-tool'), '#!/bin/sh\n', { mode: 0o755 });
  mkdirSync(join(l.top, 'etc'));
  const before = snapshot(l.top);
  let d: Awaited<ReturnType<typeof startBerthd>> | undefined;
  try {
    const r1 = install(l);
    assert.equal(r1.status, 0, r1.out);

    // The layout: PREFIX/current → versions/<id>, commands linked into the bindir.
    const current = join(l.prefix, 'current');
    const v1 = readlinkSync(current);
    assert.match(v1, /^versions\/0\.\d+\.\d+-[0-9a-f]+(\.dirty)?-\d{8}T\d{6}Z/);
    const tree1 = join(l.prefix, v1);
    for (const c of COMMANDS) {
      assert.equal(readlinkSync(join(l.bindir, c)), join(current, 'bin', c));
      // An absolute node, with the launcher's own node flags kept (berthd: its semi-space size).
      const flags = /^#!\/usr\/bin\/env(?: -S)? node(.*)$/.exec(readFileSync(join(repoRoot(), 'bin', c), 'utf8').split('\n')[0]!)?.[1] ?? '';
      const installed = readFileSync(join(tree1, 'bin', c), 'utf8').split('\n')[0]!;
      const quoted = flags.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      if (flags) assert.match(installed, new RegExp(`^#!/usr/bin/env -S /\\S*node${quoted}$`), `${c} runs an absolute node with its flags`);
      else assert.match(installed, /^#!\/\S*node$/, `${c} runs an absolute node`);
    }
    // Production dependencies only, with their native addons.
    assert.ok(existsSync(join(tree1, 'node_modules', 'better-sqlite3')));
    assert.ok(existsSync(join(tree1, 'node_modules', 'koffi')));
    for (const dev of ['typescript', 'tsx', '@bufbuild/buf', '@bufbuild/protoplugin'])
      assert.ok(!existsSync(join(tree1, 'node_modules', dev)), `dev dependency ${dev} installed`);

    // The config: the commented embedded defaults, root-only, parsing to exactly the defaults.
    const cfgText = readFileSync(l.config, 'utf8');
    assert.equal(statSync(l.config).mode & 0o777, 0o600);
    assert.match(cfgText, /^# root = "\/var\/lib\/berth"$/m);
    assert.deepEqual(validateConfig(parseToml(cfgText)), validateConfig({}));

    // The unit names the installed tree and config, and keeps the production settings.
    const unit = readFileSync(join(l.unitdir, 'berthd.service'), 'utf8');
    assert.match(unit, new RegExp(`^ExecStart=${current}/bin/berthd --config ${l.config}$`, 'm'));
    for (const line of ['Type=notify', 'KillMode=process', 'Delegate=yes', 'Restart=always', 'Before=kubelet.service'])
      assert.match(unit, new RegExp(`^${line}$`, 'm'));
    assert.match(unit, /^LimitNOFILE=\d+$/m);
    assert.doesNotMatch(unit, /^OOMScoreAdjust=/m);

    // The installed berthd starts from the installed tree and answers Version; the CLI, run
    // through its link and shebang, talks to it.
    d = await startBerthd({ bin: join(l.bindir, 'berthd'), logLevel: 'info' });
    const ver = await d.cri.runtime.version({ version: 'v1' });
    assert.equal(ver.runtimeName, 'berth');
    const maps = readFileSync(`/proc/${d.proc.pid}/maps`, 'utf8');
    const realTree = realpathSync(tree1);
    assert.ok(maps.includes(`${realTree}/node_modules/better-sqlite3/`), 'the native sqlite addon comes from the installed tree');
    assert.ok(!maps.includes(realpathSync(join(repoRoot(), 'node_modules'))), 'nothing is loaded from the checkout');
    const cli = spawnSync(join(l.bindir, 'berth'), ['--socket', d.socket, 'version'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(cli.stdout, /berth/);
    // What README tells an operator to match kubelet's cgroupDriver against.
    const info = spawnSync(join(l.bindir, 'berth'), ['--socket', d.socket, 'info'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(info.status, 0, info.stderr);
    assert.match(info.stdout, /^cgroup driver: cgroupfs /m);
    assert.match(info.stdout, /^RuntimeReady\s+true/m);

    // Uninstalling while code runs from the prefix is refused: berthd, and the shims that outlive it.
    const busy = uninstall(l);
    assert.notEqual(busy.status, 0);
    assert.match(busy.out, /processes still run from/);
    assert.ok(existsSync(tree1));

    // Upgrade: a second install sits beside the first; current moves; the config is untouched.
    const cfgStat = statSync(l.config);
    const r2 = install(l);
    assert.equal(r2.status, 0, r2.out);
    assert.match(r2.out, /keeping the existing/);
    const v2 = readlinkSync(current);
    assert.notEqual(v2, v1);
    assert.ok(existsSync(tree1), 'the running version stays in place');
    assert.equal(statSync(l.config).mtimeMs, cfgStat.mtimeMs);
    assert.equal(readFileSync(l.config, 'utf8'), cfgText);
    // --prune keeps the old version while berthd (or a shim) of it runs ...
    const p1 = run('install.sh', ['--prune', '--prefix', l.prefix]);
    assert.equal(p1.status, 0, p1.out);
    assert.match(p1.out, /keeping .*: still in use \(pids: /);
    assert.ok(existsSync(tree1));
    // berthd restarted from the new current: the upgrade.
    await d.stop();
    await d.restart();
    assert.equal((await d.cri.runtime.version({ version: 'v1' })).runtimeName, 'berth');
    assert.ok(readFileSync(`/proc/${d.proc.pid}/maps`, 'utf8').includes(`${realpathSync(join(l.prefix, v2))}/node_modules/`));
    await d.cleanup(); // stops berthd and the shims of this test
    d = undefined;
    // ... and removes it once nothing runs from it; current stays.
    const p2 = run('install.sh', ['--prune', '--prefix', l.prefix]);
    assert.equal(p2.status, 0, p2.out);
    assert.ok(!existsSync(tree1), `old version pruned:\n${p1.out}\n${p2.out}`);
    assert.ok(existsSync(join(l.prefix, v2, 'bin', 'berthd')));

    const r3 = uninstall(l);
    assert.equal(r3.status, 0, r3.out);
    assert.deepEqual(snapshot(l.top), before);
  } finally {
    await d?.cleanup();
    rmSync(l.top, { recursive: true, force: true });
  }
});

test('an existing config is never overwritten, and uninstall keeps it', { skip, timeout: 300_000 }, async () => {
  const l = layout();
  try {
    mkdirSync(join(l.top, 'etc', 'berth'), { recursive: true });
    const mine = 'log_level = "debug"\n# mine\n';
    writeFileSync(l.config, mine, { mode: 0o640 });
    const before = snapshot(l.top);
    const r = install(l);
    assert.equal(r.status, 0, r.out);
    assert.equal(readFileSync(l.config, 'utf8'), mine);
    assert.equal(statSync(l.config).mode & 0o777, 0o640);
    const u = uninstall(l);
    assert.equal(u.status, 0, u.out);
    assert.deepEqual(snapshot(l.top), before);
  } finally {
    rmSync(l.top, { recursive: true, force: true });
  }
});

test(
  'a config the operator edited after install is kept by uninstall; a command name taken by another file stops the install',
  { skip, timeout: 300_000 },
  async () => {
    const l = layout();
    try {
      const r = install(l);
      assert.equal(r.status, 0, r.out);
      writeFileSync(l.config, readFileSync(l.config, 'utf8') + 'log_level = "warn"\n');
      const u = uninstall(l);
      assert.equal(u.status, 0, u.out);
      assert.match(u.out, /keeping .*berth\.toml: changed since it was installed/);
      assert.ok(existsSync(l.config));
      assert.ok(!existsSync(l.prefix));
      assert.ok(!existsSync(join(l.bindir, 'berthd')));

      mkdirSync(l.bindir, { recursive: true });
      writeFileSync(join(l.bindir, 'berth'), '#!/bin/sh\n', { mode: 0o755 });
      const taken = install(l);
      assert.notEqual(taken.status, 0);
      assert.match(taken.out, /berth exists and was not installed here/);
      assert.ok(!existsSync(l.prefix), 'nothing installed');
    } finally {
      rmSync(l.top, { recursive: true, force: true });
    }
  },
);

test(
  'the installed unit passes systemd-analyze verify',
  { skip: skip || (!systemdAnalyze && 'systemd-analyze not installed (apt-get install systemd; .ci/run does)'), timeout: 300_000 },
  async () => {
    const l = layout();
    try {
      const r = install(l);
      assert.equal(r.status, 0, r.out);
      const v = spawnSync('systemd-analyze', ['verify', '--man=no', join(l.unitdir, 'berthd.service')], { encoding: 'utf8' });
      assert.equal(v.status, 0, `${v.stdout}${v.stderr}`);
      // Anything verify prints about this unit is a defect (it exits 0 on some warnings).
      assert.equal(
        `${v.stdout}${v.stderr}`
          .split('\n')
          .filter((x) => x.includes('berthd.service'))
          .join('\n'),
        '',
      );
      // And it does fail on a broken unit: the check is real.
      const broken = join(l.unitdir, 'berthd.service');
      writeFileSync(broken, readFileSync(broken, 'utf8').replace(/^ExecStart=\S+/m, 'ExecStart=/nonexistent/berthd'));
      const bad = spawnSync('systemd-analyze', ['verify', '--man=no', broken], { encoding: 'utf8' });
      assert.notEqual(bad.status, 0);
      assert.match(`${bad.stdout}${bad.stderr}`, /nonexistent/);
      assert.equal(uninstall(l).status, 0);
    } finally {
      rmSync(l.top, { recursive: true, force: true });
    }
  },
);

test(
  "upgrade with running pods: install A, run pods, install B, restart berthd: every pod and container is as it was, A's shim and monitors serve on; B's shim takes over when A's goes",
  { skip, timeout: 600_000 },
  async () => {
    const l = layout();
    const { startCriEnv } = await import('../helpers/cri-env.js');
    const { busyboxConfig, createContainer, runPod } = await import('../helpers/cri-container.js');
    const { ContainerState, PodSandboxState } = await import('../../src/api/cri/runtime/v1/api_pb.js');
    let env: Awaited<ReturnType<typeof startCriEnv>> | undefined;
    try {
      const r1 = install(l);
      assert.equal(r1.status, 0, r1.out);
      const treeA = realpathSync(join(l.prefix, readlinkSync(join(l.prefix, 'current'))));
      env = await startCriEnv({ bin: join(l.bindir, 'berthd'), logLevel: 'info' });
      const e = env;
      const rt = () => e.berthd.cri.runtime;
      await e.berthd.cri.image.pullImage({ image: { image: e.busybox.ref } });
      const pods = [await runPod(e), await runPod(e)];
      const ids: string[] = [];
      for (const [i, p] of pods.entries()) {
        const id = await createContainer(e, p, busyboxConfig(e, `up-${i}`, ['sh', '-c', 'i=0; while true; do echo $i; i=$((i+1)); sleep 0.05; done']));
        await rt().startContainer({ containerId: id });
        ids.push(id);
      }
      const shimPidFile = join(e.berthd.state, 's', 'k8s.io.sock.pid');
      const shim = Number(readFileSync(shimPidFile, 'utf8'));
      assert.ok(readFileSync(`/proc/${shim}/cmdline`, 'utf8').includes(`${treeA}/`), 'the shim runs from build A');
      const pidsBefore = new Map<string, number>();
      for (const id of ids)
        pidsBefore.set(id, (JSON.parse((await rt().containerStatus({ containerId: id, verbose: true })).info.info!) as { pid: number }).pid);
      const logSize = (p: (typeof pods)[number], i: number) => statSync(join(p.logDir, `up-${i}.log`)).size;
      const sizesBefore = pods.map(logSize);

      // Build B beside A, then berthd restarts from the new current. Install ids have a
      // one-second resolution: B is installed once the clock has left A's second (mostly
      // long since), so B's id is a later one.
      const stamp = /-(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z(?:\.\d+)?$/.exec(basename(treeA));
      assert.ok(stamp, `install id of ${treeA} ends in its UTC time`);
      const [, y, mo, d, h, mi, sec] = stamp.map(Number) as [number, number, number, number, number, number, number];
      const aSecondEnds = Date.UTC(y, mo - 1, d, h, mi, sec) + 1000;
      while (Date.now() < aSecondEnds) await new Promise((r) => setTimeout(r, 20));
      const r2 = install(l);
      assert.equal(r2.status, 0, r2.out);
      const treeB = realpathSync(join(l.prefix, readlinkSync(join(l.prefix, 'current'))));
      assert.notEqual(treeB, treeA);
      await e.berthd.stop();
      assert.ok(readFileSync(`/proc/${shim}/cmdline`, 'utf8').length > 0, 'the shim hosting containers outlives berthd');
      await e.berthd.restart();
      assert.ok(readFileSync(`/proc/${e.berthd.proc.pid}/maps`, 'utf8').includes(`${treeB}/node_modules/`), 'berthd runs build B');

      // Everything as it was; build A's shim still serves.
      const listed = new Map((await rt().listPodSandbox({})).items.map((p) => [p.id, p.state]));
      for (const p of pods) assert.equal(listed.get(p.id), PodSandboxState.SANDBOX_READY);
      for (const id of ids) {
        const st = await rt().containerStatus({ containerId: id, verbose: true });
        assert.equal(st.status?.state, ContainerState.CONTAINER_RUNNING);
        assert.equal((JSON.parse(st.info.info!) as { pid: number }).pid, pidsBefore.get(id), 'the same process');
      }
      assert.equal(Number(readFileSync(shimPidFile, 'utf8')), shim, "build A's shim serves the containers");
      const ex = await rt().execSync({ containerId: ids[0]!, cmd: ['echo', 'after-upgrade'], timeout: 10n });
      assert.equal(Buffer.from(ex.stdout).toString(), 'after-upgrade\n');
      const grown = () => pods.every((p, i) => logSize(p, i) > (sizesBefore[i] ?? 0));
      for (const deadline = Date.now() + 10_000; !grown() && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 20));
      pods.forEach((p, i) => assert.ok(logSize(p, i) > (sizesBefore[i] ?? 0), `log ${i} still grows`));

      // Replace A's shim by B's (kill it): B's berthd starts its own shim, which takes the
      // running containers over from disk without restarting any of them.
      const gone = (pid: number) => !existsSync(`/proc/${pid}`) || /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
      process.kill(shim, 'SIGKILL');
      const until = Date.now() + 15_000;
      const newShim = () => Number(existsSync(shimPidFile) ? readFileSync(shimPidFile, 'utf8') : 0);
      while ((newShim() === shim || !newShim()) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      const shimB = newShim();
      assert.ok(shimB && shimB !== shim && !gone(shimB), 'a new shim runs');
      assert.ok(readFileSync(`/proc/${shimB}/cmdline`, 'utf8').includes(`${treeB}/`), "the new shim is build B's");
      for (const id of ids) {
        const st = await rt().containerStatus({ containerId: id, verbose: true });
        assert.equal(st.status?.state, ContainerState.CONTAINER_RUNNING);
        assert.equal((JSON.parse(st.info.info!) as { pid: number }).pid, pidsBefore.get(id), 'not restarted by the takeover');
      }
      const ex2 = await rt().execSync({ containerId: ids[1]!, cmd: ['echo', 'served-by-b'], timeout: 10n });
      assert.equal(Buffer.from(ex2.stdout).toString(), 'served-by-b\n');
      for (const p of pods) await p.remove();
      // With nothing left to serve, the shim ends when berthd stops.
      await e.berthd.stop();
      const end = Date.now() + 10_000;
      while (!gone(shimB) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      assert.ok(gone(shimB), 'the idle shim exited with berthd');
    } finally {
      await env?.cleanup();
      uninstall(l, '--force');
      rmSync(l.top, { recursive: true, force: true });
    }
  },
);
