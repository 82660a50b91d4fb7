/**
 * Security context and process settings observed from inside real containers: each container
 * prints what it sees into its CRI log, the test reads the log.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerState, MountPropagation, SecurityProfile_ProfileType } from '../../src/api/cri/runtime/v1/api_pb.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { busyboxConfig, createContainer, logText, runPod, runToExit, waitForState, type ContainerConfigInit, type TestPod } from '../helpers/cri-container.js';

let env: CriEnv;
let pod: TestPod;
let seq = 0;

before(async () => {
  env = await startCriEnv();
  await env.berthd.cri.image.pullImage({ image: { image: env.busybox.ref } });
  pod = await runPod(env);
});

after(async () => {
  await pod?.remove();
  await env?.cleanup();
});

/** Runs `script` in busybox with `extra` config, returns its log text; the container is removed. */
async function run(script: string, extra: Partial<ContainerConfigInit> = {}, inPod: TestPod = pod): Promise<string> {
  const { id, status, log } = await runToExit(env, inPod, busyboxConfig(env, `sec${++seq}`, ['sh', '-c', script], extra));
  await env.berthd.cri.runtime.removeContainer({ containerId: id });
  assert.equal(status.exitCode, 0, `script failed (${status.exitCode}): ${log.map((l) => l.msg).join('\n')}`);
  return log.map((l) => l.msg).join('\n');
}

const statusLine = (name: string): string => `grep '^${name}:' /proc/self/status`;
const sc = (securityContext: object): Partial<ContainerConfigInit> => ({ linux: { securityContext } });

test('run_as_user with supplemental groups: uid, primary gid from the image, image and requested groups', async () => {
  const out = await run('id -u; id -g; id -G', sc({ runAsUser: { value: 1002n }, supplementalGroups: [3000n] }));
  const [uid, gid, groups] = out.split('\n');
  assert.equal(uid, '1002');
  assert.equal(gid, '1002');
  // app is a member of "users" (100) in the image's /etc/group.
  assert.deepEqual(
    groups!
      .split(' ')
      .map(Number)
      .sort((a, b) => a - b),
    [100, 1002, 3000],
  );
});

test('run_as_username is resolved through the image /etc/passwd with its groups', async () => {
  const out = await run('id -u; id -G', sc({ runAsUsername: 'www-data' }));
  const [uid, groups] = out.split('\n');
  assert.equal(uid, '33');
  assert.deepEqual(
    groups!
      .split(' ')
      .map(Number)
      .sort((a, b) => a - b),
    [33, 100, 1005],
  );
});

test('run_as_group overrides the primary group', async () => {
  const out = await run('id -u; id -g', sc({ runAsUser: { value: 1002n }, runAsGroup: { value: 4242n } }));
  assert.deepEqual(out.split('\n'), ['1002', '4242']);
});

test('dropping ALL and adding NET_BIND_SERVICE leaves only that capability', async () => {
  const out = await run(statusLine('CapEff'), sc({ capabilities: { dropCapabilities: ['ALL'], addCapabilities: ['NET_BIND_SERVICE'] } }));
  assert.match(out, /^CapEff:\s+0000000000000400$/);
});

// An independent reference, written out here rather than taken from berth's constants: the
// default capabilities containerd and moby document (oci.defaultUnixCaps / docker's default
// set), with their kernel bit numbers.
const REFERENCE_DEFAULT_CAPS: Record<string, number> = {
  CAP_CHOWN: 0,
  CAP_DAC_OVERRIDE: 1,
  CAP_FOWNER: 3,
  CAP_FSETID: 4,
  CAP_KILL: 5,
  CAP_SETGID: 6,
  CAP_SETUID: 7,
  CAP_SETPCAP: 8,
  CAP_NET_BIND_SERVICE: 10,
  CAP_NET_RAW: 13,
  CAP_SYS_CHROOT: 18,
  CAP_MKNOD: 27,
  CAP_AUDIT_WRITE: 29,
  CAP_SETFCAP: 31,
};
// containerd's default masked and read-only paths (plus powercap, masked since the RAPL
// side channel, CVE-2020-8694).
const REFERENCE_MASKED = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];
const REFERENCE_READONLY = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

test('the default capabilities are exactly the containerd/moby default set (effective and bounding), observed inside', async () => {
  const out = await run(`${statusLine('CapEff')}; ${statusLine('CapBnd')}; ${statusLine('CapPrm')}`);
  const want = Object.values(REFERENCE_DEFAULT_CAPS).reduce((m, bit) => m | (1n << BigInt(bit)), 0n);
  for (const name of ['CapEff', 'CapBnd', 'CapPrm']) {
    const hex = new RegExp(`^${name}:\\s+([0-9a-f]+)$`, 'm').exec(out)?.[1];
    assert.ok(hex, `${name} line in ${out}`);
    const got = BigInt(`0x${hex}`);
    const extra = Object.entries({ ...Object.fromEntries(Array.from({ length: 41 }, (_, i) => [`bit${i}`, i])) }).filter(
      ([, b]) => ((got >> BigInt(b)) & 1n) === 1n && ((want >> BigInt(b)) & 1n) === 0n,
    );
    assert.equal(got, want, `${name}: got ${hex}, want ${want.toString(16).padStart(16, '0')} (extra bits: ${extra.map(([, b]) => b).join(',')})`);
  }
});

test('every default masked path is unreadable and every read-only path is read-only, observed inside', async () => {
  // A masked file reads as empty (bound /dev/null); a masked dir is an empty tmpfs; absent paths are fine.
  const probe = REFERENCE_MASKED.map(
    (p) =>
      `if [ -d ${p} ]; then n=$(ls -A ${p} | wc -l); echo "${p} dir $n"; elif [ -e ${p} ]; then n=$(head -c 4096 ${p} 2>/dev/null | wc -c); echo "${p} file $n"; else echo "${p} absent 0"; fi`,
  );
  const ro = REFERENCE_READONLY.map(
    (p) =>
      `if [ ! -e ${p} ]; then echo "${p} absent"; elif grep -q " ${p} " /proc/self/mountinfo && grep " ${p} " /proc/self/mountinfo | tail -1 | awk '{print $6}' | grep -qE '(^|,)ro(,|$)'; then echo "${p} ro"; else echo "${p} rw"; fi`,
  );
  const out = await run([...probe, ...ro].join('; '));
  const lines = out.split('\n').map((l) => l.trim());
  for (const p of REFERENCE_MASKED) {
    const l = lines.find((x) => x.startsWith(`${p} `));
    assert.ok(l, `no line for ${p}`);
    assert.match(l, / 0$/, `${p} must be masked (empty): ${l}`);
  }
  // (A path this kernel lacks, e.g. /proc/sysrq-trigger without CONFIG_MAGIC_SYSRQ, is absent.)
  for (const p of REFERENCE_READONLY)
    assert.ok(lines.includes(`${p} ro`) || lines.includes(`${p} absent`), `${p} must be a read-only mount: ${lines.find((x) => x.startsWith(`${p} `))}`);
  assert.ok(lines.includes('/proc/sys ro'), '/proc/sys exists everywhere and must be read-only');
});

test('seccomp RuntimeDefault filters (mode 2), Unconfined does not (mode 0)', async () => {
  const confined = await run(statusLine('Seccomp'), sc({ seccomp: { profileType: SecurityProfile_ProfileType.RuntimeDefault } }));
  assert.match(confined, /^Seccomp:\s+2$/);
  const unconfined = await run(statusLine('Seccomp'), sc({ seccomp: { profileType: SecurityProfile_ProfileType.Unconfined } }));
  assert.match(unconfined, /^Seccomp:\s+0$/);
});

test('no_new_privs sets NoNewPrivs; it is off by default', async () => {
  assert.match(await run(statusLine('NoNewPrivs'), sc({ noNewPrivs: true })), /^NoNewPrivs:\s+1$/);
  assert.match(await run(statusLine('NoNewPrivs')), /^NoNewPrivs:\s+0$/);
});

test('a read-only rootfs refuses writes; /dev/shm stays writable', async () => {
  const out = await run(
    'if touch /newfile 2>/dev/null; then echo wrote; else echo refused; fi; touch /dev/shm/ok && echo shm-ok',
    sc({ readonlyRootfs: true }),
  );
  assert.deepEqual(out.split('\n'), ['refused', 'shm-ok']);
  const rw = await run('if touch /newfile 2>/dev/null; then echo wrote; else echo refused; fi');
  assert.equal(rw, 'wrote');
});

test('masked paths read as empty (/proc/timer_list) and /proc/sys is read-only', async () => {
  const out = await run('wc -c < /proc/timer_list; if { echo 1 > /proc/sys/vm/drop_caches; } 2>/dev/null; then echo sys-writable; else echo sys-ro; fi');
  assert.deepEqual(
    out.split('\n').map((s) => s.trim()),
    ['0', 'sys-ro'],
  );
});

test('a privileged container gets every capability the node has and unmasked /proc', async () => {
  const privPod = await runPod(env, { linux: { securityContext: { privileged: true } } });
  try {
    const out = await run(`${statusLine('CapEff')}; wc -c < /proc/timer_list | tr -d ' '`, sc({ privileged: true }), privPod);
    const [capLine, kcore] = out.split('\n');
    const hostBnd = /^CapEff:\s+([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1];
    assert.equal(capLine, `CapEff:\t${hostBnd}`);
    assert.notEqual(kcore, '0');
  } finally {
    await privPod.remove();
  }
});

test('env: image env plus config env, the config winning; working dir; hostname', async () => {
  const out = await run('echo "$PATH"; echo "$FOO"; pwd; hostname', {
    envs: [
      { key: 'PATH', value: new TextEncoder().encode('/custom:/bin') },
      { key: 'FOO', value: new TextEncoder().encode('bar baz') },
    ],
    workingDir: '/var/www',
  });
  assert.deepEqual(out.split('\n'), ['/custom:/bin', 'bar baz', '/var/www', pod.config.hostname]);
  // Without config env the image's PATH is used.
  assert.equal(await run('echo "$PATH"'), '/bin:/usr/bin:/sbin:/usr/sbin');
});

test('command and args: args alone replace the image Cmd; command replaces the entrypoint', async () => {
  const argsOnly = await runToExit(env, pod, { ...busyboxConfig(env, `sec${++seq}`, []), args: ['echo', 'args-only'] });
  await env.berthd.cri.runtime.removeContainer({ containerId: argsOnly.id });
  assert.deepEqual(
    argsOnly.log.map((l) => l.msg),
    ['args-only'],
  );
  const both = await runToExit(env, pod, { ...busyboxConfig(env, `sec${++seq}`, ['echo', 'cmd']), args: ['and', 'args'] });
  await env.berthd.cri.runtime.removeContainer({ containerId: both.id });
  assert.deepEqual(
    both.log.map((l) => l.msg),
    ['cmd and args'],
  );
});

test('bind mounts: read-only mounts refuse writes, writable mounts reach the host, symlinked host paths resolve', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-sec-mnt-'));
  try {
    mkdirSync(join(dir, 'ro'));
    mkdirSync(join(dir, 'rw'));
    writeFileSync(join(dir, 'ro', 'f'), 'host-data\n');
    spawnSync('ln', ['-s', join(dir, 'ro'), join(dir, 'link')]);
    const out = await run(
      'cat /ro/f; if touch /ro/g 2>/dev/null; then echo ro-writable; else echo ro-refused; fi; echo from-container > /rw/out; cat /viaLink/f',
      {
        mounts: [
          { containerPath: '/ro', hostPath: join(dir, 'ro'), readonly: true },
          { containerPath: '/rw', hostPath: join(dir, 'rw') },
          { containerPath: '/viaLink', hostPath: join(dir, 'link'), readonly: true },
        ],
      },
    );
    assert.deepEqual(out.split('\n'), ['host-data', 'ro-refused', 'host-data']);
    assert.equal(readFileSync(join(dir, 'rw', 'out'), 'utf8'), 'from-container\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('HOST_TO_CONTAINER propagation: a mount made on the host later appears in the container', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-sec-prop-'));
  const shared = join(dir, 'shared');
  mkdirSync(shared);
  const mounted: string[] = [];
  let id: string | undefined;
  try {
    // A shared mount point of its own, so propagation does not depend on how /tmp is mounted.
    assert.equal(spawnSync('mount', ['--bind', shared, shared]).status, 0);
    mounted.push(shared);
    assert.equal(spawnSync('mount', ['--make-shared', shared]).status, 0);
    mkdirSync(join(shared, 'sub'));
    id = await createContainer(
      env,
      pod,
      busyboxConfig(env, `sec${++seq}`, ['sh', '-c', 'echo ready; while [ ! -f /prop/sub/marker ]; do sleep 0.1; done; cat /prop/sub/marker'], {
        mounts: [{ containerPath: '/prop', hostPath: shared, propagation: MountPropagation.PROPAGATION_HOST_TO_CONTAINER }],
      }),
    );
    await env.berthd.cri.runtime.startContainer({ containerId: id });
    const s0 = await waitForState(env, id, ContainerState.CONTAINER_RUNNING);
    const deadline = Date.now() + 10_000;
    while (!logText(s0.logPath).includes('ready') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(spawnSync('mount', ['-t', 'tmpfs', 'tmpfs', join(shared, 'sub')]).status, 0);
    mounted.push(join(shared, 'sub'));
    writeFileSync(join(shared, 'sub', 'marker'), 'propagated\n');
    const s = await waitForState(env, id, ContainerState.CONTAINER_EXITED, 10_000);
    assert.equal(s.exitCode, 0);
    assert.ok(logText(s.logPath).includes('propagated'));
  } finally {
    if (id) await env.berthd.cri.runtime.removeContainer({ containerId: id });
    for (const m of mounted.reverse()) spawnSync('umount', ['-l', m]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a Localhost seccomp profile is loaded from the node and enforced; a missing one is INVALID_ARGUMENT', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-sec-seccomp-'));
  try {
    const profile = join(dir, 'no-mkdir.json');
    writeFileSync(
      profile,
      JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] }),
    );
    const out = await run(
      `${statusLine('Seccomp')}; if mkdir /tmp/d 2>/dev/null; then echo made; else echo refused; fi; touch /tmp/f && echo touched`,
      sc({
        seccomp: { profileType: SecurityProfile_ProfileType.Localhost, localhostRef: profile },
      }),
    );
    assert.deepEqual(
      out.split('\n').map((s) => s.replace(/\s+/g, ' ')),
      ['Seccomp: 2', 'refused', 'touched'],
    );
    await assert.rejects(
      createContainer(
        env,
        pod,
        busyboxConfig(
          env,
          `sec${++seq}`,
          ['true'],
          sc({ seccomp: { profileType: SecurityProfile_ProfileType.Localhost, localhostRef: join(dir, 'missing.json') } }),
        ),
      ),
      (e: { code: number; details: string }) => e.code === 3 && e.details.includes('missing.json'),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
