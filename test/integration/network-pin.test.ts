/**
 * src/network/pin.ts against the real kernel: one pin process creates net/ipc/uts (and a user
 * namespace owning them), brings lo up, sets the hostname and sysctls; unpin leaves nothing.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isBerthError } from '../../src/errors.js';
import { PinPool, pinNamespaces, pinsAlive, unpinNamespaces } from '../../src/network/pin.js';
import { until } from '../helpers/process.js';
import { isRoot } from '../helpers/netns.js';

const skip = !isRoot() ? 'needs root' : false;
const dirs: string[] = [];
after(() => {
  for (const d of dirs) {
    try {
      execFileSync('umount', ['--lazy', d], { stdio: 'ignore' });
    } catch {
      /* not mounted */
    }
    rmSync(d, { recursive: true, force: true });
  }
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'berth-pin-'));
  dirs.push(d);
  return d;
}

const mountsUnder = (d: string): string[] =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(`${d}/`));
const inNs = (args: string[], cmd: string[]): string => execFileSync('nsenter', [...args, ...cmd], { encoding: 'utf8' }).trim();

test('pins net, ipc and uts with lo up, the hostname and sysctls; unpin removes everything', { skip }, async () => {
  const dir = tempDir();
  const pins = await pinNamespaces({
    id: 'p1',
    dir,
    net: true,
    ipc: true,
    uts: true,
    hostname: 'pinned',
    sysctls: { 'net.ipv4.ip_unprivileged_port_start': '81', 'kernel.shm_rmid_forced': '1' },
  });
  assert.ok(await pinsAlive(pins));
  const args = [`--net=${pins.net}`, `--ipc=${pins.ipc}`, `--uts=${pins.uts}`];
  assert.equal(inNs(args, ['hostname']), 'pinned');
  assert.equal(inNs(args, ['cat', '/proc/sys/net/ipv4/ip_unprivileged_port_start']), '81');
  assert.equal(inNs(args, ['cat', '/proc/sys/kernel/shm_rmid_forced']), '1');
  assert.match(inNs(args, ['ip', 'link', 'show', 'lo']), /[<,]UP[,>]/);
  assert.notEqual(inNs(args, ['readlink', '/proc/self/ns/net']), readlinkSync('/proc/self/ns/net'));
  await unpinNamespaces(pins);
  await unpinNamespaces(pins);
  assert.deepEqual(readdirSync(dir), []);
  assert.deepEqual(mountsUnder(dir), []);
  assert.equal(await pinsAlive(pins), false);
});

test('a user namespace pin owns the others and carries the id mappings', { skip }, async () => {
  const dir = tempDir();
  const map = [{ containerID: 0, hostID: 300000, size: 65536 }];
  const pins = await pinNamespaces({
    id: 'u1',
    dir,
    net: true,
    ipc: true,
    uts: true,
    hostname: 'uns',
    userns: { uidMappings: map, gidMappings: map },
    sysctls: { 'kernel.shm_rmid_forced': '1' },
  });
  try {
    assert.deepEqual(Object.keys(pins).sort(), ['ipc', 'net', 'user', 'uts']);
    assert.ok(await pinsAlive(pins));
    // NS_GET_USERNS on the pinned netns yields the pinned user namespace: it owns the netns.
    const owner = execFileSync(
      'perl',
      ['-e', 'open(my $f, "<", $ARGV[0]) or die; my $fd = ioctl($f, 0xb701, 0) or die "$!"; print((stat("/proc/self/fd/" . ($fd + 0)))[1]);', pins.net!],
      { encoding: 'utf8' },
    );
    assert.equal(owner, execFileSync('stat', ['-L', '-c', '%i', pins.user!], { encoding: 'utf8' }).trim());
    assert.equal(inNs([`--uts=${pins.uts}`], ['hostname']), 'uns');
    assert.equal(inNs([`--ipc=${pins.ipc}`], ['cat', '/proc/sys/kernel/shm_rmid_forced']), '1');
  } finally {
    await unpinNamespaces(pins);
  }
  assert.deepEqual(readdirSync(dir), []);
  assert.deepEqual(mountsUnder(dir), []);
});

test('a failing pin (bad sysctl) leaves no file or mount; an existing pin is AlreadyExists', { skip }, async () => {
  const dir = tempDir();
  await assert.rejects(
    pinNamespaces({ id: 'f1', dir, net: true, ipc: true, uts: true, sysctls: { 'net.no.such.sysctl': '1' } }),
    (e) => isBerthError(e, 'Internal') && e.message.includes('net.no.such.sysctl'),
  );
  assert.deepEqual(readdirSync(dir), []);
  assert.deepEqual(mountsUnder(dir), []);
  const pins = await pinNamespaces({ id: 'f2', dir, net: true, ipc: false, uts: false });
  await assert.rejects(pinNamespaces({ id: 'f2', dir, net: true, ipc: false, uts: false }), (e) => isBerthError(e, 'AlreadyExists'));
  assert.ok(existsSync(pins.net!) && (await pinsAlive(pins)), 'the first pin is untouched');
  await unpinNamespaces(pins);
  assert.deepEqual(readdirSync(dir), []);
});

test(
  'a pool serves pins from a spare made ahead: each pod gets its own fresh namespaces, hostname and sysctls (odd bytes too); an idle spare goes',
  { skip },
  async () => {
    const dir = tempDir();
    const pool = new PinPool({ refillMs: 10, idleMs: 60_000 });
    try {
      // The first pin has no spare yet; it schedules one.
      const first = await pinNamespaces({ id: 'q0', dir, net: true, ipc: true, uts: true, hostname: 'zero' }, undefined, pool);
      await until(() => pool.sparePid() !== undefined, 'a spare pin program is made after a take');
      const spare = pool.sparePid()!;
      const refused = '50000 40000';
      const second = await pinNamespaces(
        {
          id: 'q1',
          dir,
          net: true,
          ipc: true,
          uts: true,
          hostname: 'one',
          sysctls: { 'net.ipv4.ip_local_port_range': '40000\t50000\n', 'kernel.shm_rmid_forced': '1' },
        },
        undefined,
        pool,
      );
      assert.deepEqual(pool.counts, { spare: 1, spawned: 1 }, 'the second pin used the spare');
      assert.equal(existsSync(`/proc/${spare}`), false, 'the spare exited once its namespaces were bound');
      const args = (p: typeof first) => [`--net=${p.net}`, `--ipc=${p.ipc}`, `--uts=${p.uts}`];
      assert.equal(inNs(args(first), ['hostname']), 'zero');
      assert.equal(inNs(args(second), ['hostname']), 'one');
      assert.equal(inNs(args(second), ['cat', '/proc/sys/net/ipv4/ip_local_port_range']).replace(/\s+/g, ' '), '40000 50000');
      assert.equal(inNs(args(second), ['cat', '/proc/sys/kernel/shm_rmid_forced']), '1');
      assert.equal(inNs(args(first), ['cat', '/proc/sys/kernel/shm_rmid_forced']), '0', 'sysctls stay in their pod');
      assert.match(inNs(args(second), ['ip', 'link', 'show', 'lo']), /[<,]UP[,>]/);
      for (const k of ['net', 'ipc', 'uts'] as const)
        assert.notEqual(inNs(args(first), ['readlink', `/proc/self/ns/${k}`]), inNs(args(second), ['readlink', `/proc/self/ns/${k}`]));
      // A value the kernel refuses fails that pin alone, naming the sysctl; the pool goes on.
      await until(() => pool.sparePid() !== undefined, 'the spare is made again');
      await assert.rejects(
        pinNamespaces(
          { id: 'q2', dir, net: true, ipc: true, uts: true, hostname: 'two', sysctls: { 'net.ipv4.ip_local_port_range': refused } },
          undefined,
          pool,
        ),
        /sysctl net\.ipv4\.ip_local_port_range/,
      );
      assert.equal(existsSync(join(dir, 'q2')), false, 'nothing left of the failed pin');
      // Other shapes (no UTS: a host-network-like request) do not take the spare.
      await until(() => pool.sparePid() !== undefined, 'the spare is made again');
      const before = pool.sparePid();
      const ipcOnly = await pinNamespaces({ id: 'q3', dir, net: false, ipc: true, uts: false }, undefined, pool);
      assert.equal(pool.sparePid(), before, 'the spare still waits');
      for (const p of [first, second, ipcOnly]) await unpinNamespaces(p);
      pool.close();
      await until(() => before === undefined || !existsSync(`/proc/${before}`), 'close ends the spare');
      assert.deepEqual(readdirSync(dir), []);
      assert.deepEqual(mountsUnder(dir), []);
    } finally {
      pool.close();
    }
  },
);

test('an unused spare is dropped after idleMs', { skip }, async () => {
  const dir = tempDir();
  const pool = new PinPool({ refillMs: 1, idleMs: 200 });
  try {
    await unpinNamespaces(await pinNamespaces({ id: 'r0', dir, net: true, ipc: true, uts: true }, undefined, pool));
    await until(() => pool.sparePid() !== undefined, 'a spare is made');
    const pid = pool.sparePid()!;
    await until(() => !existsSync(`/proc/${pid}`) && pool.sparePid() === undefined, 'the idle spare is gone');
  } finally {
    pool.close();
  }
});
