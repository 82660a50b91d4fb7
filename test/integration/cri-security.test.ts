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
  assert.deepEqual(groups!.split(' ').map(Number).sort((a, b) => a - b), [100, 1002, 3000]);
});

test('run_as_username is resolved through the image /etc/passwd with its groups', async () => {
  const out = await run('id -u; id -G', sc({ runAsUsername: 'www-data' }));
  const [uid, groups] = out.split('\n');
  assert.equal(uid, '33');
  assert.deepEqual(groups!.split(' ').map(Number).sort((a, b) => a - b), [33, 100, 1005]);
});

test('run_as_group overrides the primary group', async () => {
  const out = await run('id -u; id -g', sc({ runAsUser: { value: 1002n }, runAsGroup: { value: 4242n } }));
  assert.deepEqual(out.split('\n'), ['1002', '4242']);
});

test('dropping ALL and adding NET_BIND_SERVICE leaves only that capability', async () => {
  const out = await run(statusLine('CapEff'), sc({ capabilities: { dropCapabilities: ['ALL'], addCapabilities: ['NET_BIND_SERVICE'] } }));
  assert.match(out, /^CapEff:\s+0000000000000400$/);
});

test('the default capability set is the containerd default (no SYS_ADMIN)', async () => {
  const out = await run(statusLine('CapEff'));
  const caps = BigInt(`0x${/CapEff:\s+([0-9a-f]+)/.exec(out)![1]}`);
  const CAP_SYS_ADMIN = 21n;
  const CAP_NET_BIND_SERVICE = 10n;
  assert.equal((caps >> CAP_SYS_ADMIN) & 1n, 0n);
  assert.equal((caps >> CAP_NET_BIND_SERVICE) & 1n, 1n);
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
  const out = await run('if touch /newfile 2>/dev/null; then echo wrote; else echo refused; fi; touch /dev/shm/ok && echo shm-ok', sc({ readonlyRootfs: true }));
  assert.deepEqual(out.split('\n'), ['refused', 'shm-ok']);
  const rw = await run('if touch /newfile 2>/dev/null; then echo wrote; else echo refused; fi');
  assert.equal(rw, 'wrote');
});

test('masked paths read as empty (/proc/timer_list) and /proc/sys is read-only', async () => {
  const out = await run('wc -c < /proc/timer_list; if { echo 1 > /proc/sys/vm/drop_caches; } 2>/dev/null; then echo sys-writable; else echo sys-ro; fi');
  assert.deepEqual(out.split('\n').map((s) => s.trim()), ['0', 'sys-ro']);
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
  assert.deepEqual(argsOnly.log.map((l) => l.msg), ['args-only']);
  const both = await runToExit(env, pod, { ...busyboxConfig(env, `sec${++seq}`, ['echo', 'cmd']), args: ['and', 'args'] });
  await env.berthd.cri.runtime.removeContainer({ containerId: both.id });
  assert.deepEqual(both.log.map((l) => l.msg), ['cmd and args']);
});

test('bind mounts: read-only mounts refuse writes, writable mounts reach the host, symlinked host paths resolve', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-sec-mnt-'));
  try {
    mkdirSync(join(dir, 'ro'));
    mkdirSync(join(dir, 'rw'));
    writeFileSync(join(dir, 'ro', 'f'), 'host-data\n');
    spawnSync('ln', ['-s', join(dir, 'ro'), join(dir, 'link')]);
    const out = await run('cat /ro/f; if touch /ro/g 2>/dev/null; then echo ro-writable; else echo ro-refused; fi; echo from-container > /rw/out; cat /viaLink/f', {
      mounts: [
        { containerPath: '/ro', hostPath: join(dir, 'ro'), readonly: true },
        { containerPath: '/rw', hostPath: join(dir, 'rw') },
        { containerPath: '/viaLink', hostPath: join(dir, 'link'), readonly: true },
      ],
    });
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
    const out = await run(`${statusLine('Seccomp')}; if mkdir /tmp/d 2>/dev/null; then echo made; else echo refused; fi; touch /tmp/f && echo touched`, sc({
      seccomp: { profileType: SecurityProfile_ProfileType.Localhost, localhostRef: profile },
    }));
    assert.deepEqual(out.split('\n').map((s) => s.replace(/\s+/g, ' ')), ['Seccomp: 2', 'refused', 'touched']);
    await assert.rejects(
      createContainer(env, pod, busyboxConfig(env, `sec${++seq}`, ['true'], sc({ seccomp: { profileType: SecurityProfile_ProfileType.Localhost, localhostRef: join(dir, 'missing.json') } }))),
      (e: { code: number; details: string }) => e.code === 3 && e.details.includes('missing.json'),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
