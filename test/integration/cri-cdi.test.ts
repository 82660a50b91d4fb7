/**
 * CDI devices through a real berthd and runc: spec files in temp directories describe device
 * nodes the test makes with mknod (one with /dev/null's 1:3, one with an unused major), a
 * read-only bind mount, a createRuntime hook, env and additional gids; the container reports
 * what it sees. Requests are shaped as kubelet sends them (ContainerConfig.CDI_devices), plus
 * the older cdi.k8s.io/ annotations. Unknown, ambiguous and broken cases fail CreateContainer
 * naming the device and the file, and leave no container behind.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { NamespaceMode } from '../../src/api/cri/runtime/v1/api_pb.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { busyboxConfig, runPod, runToExit, type ContainerConfigInit, type TestPod } from '../helpers/cri-container.js';

let env: CriEnv;
let pod: TestPod;
let root: string;
let low: string;
let high: string;
let hookDir: string;
let fakeMajor: number;
let seq = 0;

/** A char major /proc/devices does not list (the 240-254 block is for local/dynamic use). */
function unusedCharMajor(): number {
  const text = readFileSync('/proc/devices', 'utf8');
  const chars = text.slice(0, text.indexOf('Block devices'));
  const used = new Set(chars.split('\n').map((l) => Number(l.trim().split(/\s+/)[0])));
  for (let m = 240; m <= 254; m++) if (!used.has(m)) return m;
  throw new Error('no unused char major in 240..254');
}

function mknod(path: string, mode: string, type: string, major: number, minor: number): void {
  const r = spawnSync('mknod', ['-m', mode, path, type, String(major), String(minor)], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'berth-cdi-'));
  low = join(root, 'etc-cdi');
  high = join(root, 'run-cdi');
  hookDir = join(root, 'hook');
  const devDir = join(root, 'dev');
  const share = join(root, 'share');
  for (const d of [low, high, hookDir, devDir, share]) mkdirSync(d);
  chmodSync(root, 0o755);
  fakeMajor = unusedCharMajor();
  mknod(join(devDir, 'nullish'), '0640', 'c', 1, 3);
  mknod(join(devDir, 'nullish-666'), '0666', 'c', 1, 3);
  mknod(join(devDir, 'fake-host'), '0604', 'c', fakeMajor, 9);
  writeFileSync(join(share, 'vendor.conf'), 'from-the-host\n');
  // The later directory defines "null" and "fake"; the earlier one "null" too (loses) and "lowonly".
  writeFileSync(
    join(low, 'berth-test.yaml'),
    [
      'cdiVersion: "0.5.0"',
      'kind: berth.test/dev',
      'devices:',
      '  - name: "null"',
      '    containerEdits:',
      '      env: [WHICH=low]',
      '  - name: lowonly',
      '    containerEdits:',
      '      env: [LOWONLY=yes]',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(high, 'berth-test.json'),
    JSON.stringify({
      cdiVersion: '0.7.0',
      kind: 'berth.test/dev',
      containerEdits: {
        env: ['CDI_SPEC=berth-test'],
        additionalGids: [4242],
        mounts: [{ hostPath: share, containerPath: '/opt/cdi', options: ['ro', 'nosuid', 'nodev', 'rbind'] }],
        hooks: [{ hookName: 'createRuntime', path: '/bin/sh', args: ['sh', '-c', `cat > ${hookDir}/state.json`] }],
      },
      devices: [
        { name: 'null', containerEdits: { env: ['WHICH=high'], deviceNodes: [{ path: '/dev/cdi-null', hostPath: join(devDir, 'nullish') }] } },
        { name: 'null666', containerEdits: { deviceNodes: [{ path: '/dev/cdi-null666', hostPath: join(devDir, 'nullish-666') }] } },
        { name: 'fakehost', containerEdits: { deviceNodes: [{ path: '/dev/cdi-fakehost', hostPath: join(devDir, 'fake-host'), permissions: 'r' }] } },
        {
          name: 'fake',
          containerEdits: {
            deviceNodes: [{ path: '/dev/cdi-fake', type: 'c', major: fakeMajor, minor: 7, fileMode: 0o620, permissions: 'rw', gid: 4343 }],
            additionalGids: [4343],
          },
        },
      ],
    }),
  );
  env = await startCriEnv({ extraToml: `[cdi]\nspec_dirs = [${JSON.stringify(low)}, ${JSON.stringify(high)}]\n` });
  await env.berthd.cri.image.pullImage({ image: { image: env.busybox.ref } });
  pod = await runPod(env);
});

after(async () => {
  await pod?.remove();
  await env?.cleanup();
  if (root) rmSync(root, { recursive: true, force: true });
});

async function run(script: string, extra: Partial<ContainerConfigInit>, inPod: TestPod = pod): Promise<{ id: string; out: string }> {
  const { id, status, log } = await runToExit(env, inPod, busyboxConfig(env, `cdi${++seq}`, ['sh', '-c', script], extra));
  await env.berthd.cri.runtime.removeContainer({ containerId: id });
  const out = log.map((l) => l.msg).join('\n');
  assert.equal(status.exitCode, 0, `script failed (${status.exitCode}): ${out}`);
  return { id, out };
}

const lines = (out: string): Record<string, string> =>
  Object.fromEntries(
    out
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );

test('CDI_devices: device nodes, cgroup rules, env, mounts, hooks and additional gids inside the container', async () => {
  const script = [
    'echo null_stat=$(stat -c "%t:%T %a %F" /dev/cdi-null)',
    'echo fake_stat=$(stat -c "%t:%T %a %F %g" /dev/cdi-fake)',
    // 1:3 is allowed by the rule: writing and reading work.
    'echo hello > /dev/cdi-null && echo null_write=ok',
    'echo null_read=$(wc -c < /dev/cdi-null)',
    // The fake node passes the device cgroup (rw) and reaches the kernel, which has no driver.
    'echo fake_open=$( (: < /dev/cdi-fake) 2>&1 | grep -o "No such device or address\\|Operation not permitted" )',
    // Numbers and mode read from the host node; its rule allows reading only.
    'echo fakehost_stat=$(stat -c "%t:%T %a" /dev/cdi-fakehost)',
    'echo fakehost_read=$( (: < /dev/cdi-fakehost) 2>&1 | grep -o "No such device or address\\|Operation not permitted" )',
    'echo fakehost_write=$( (: > /dev/cdi-fakehost) 2>&1 | grep -o "No such device or address\\|Operation not permitted" )',
    // Control: a node the cgroup does not allow (1:4) is refused before any driver.
    'mknod /tmp/port c 1 4 && echo port_open=$( (: < /tmp/port) 2>&1 | grep -o "No such device or address\\|Operation not permitted" )',
    'echo which=$WHICH',
    'echo spec_env=$CDI_SPEC',
    'echo lowonly=${LOWONLY:-unset}',
    'echo conf=$(cat /opt/cdi/vendor.conf)',
    'echo ro=$(touch /opt/cdi/x 2>&1 | grep -o "Read-only file system")',
    'echo groups=$(grep ^Groups: /proc/self/status | cut -f2)',
  ].join('; ');
  const { id, out } = await run(script, {
    CDIDevices: [{ name: 'berth.test/dev=null' }, { name: 'berth.test/dev=fake' }, { name: 'berth.test/dev=fakehost' }],
  });
  const v = lines(out);
  assert.equal(v.null_stat, '1:3 640 character special file', out);
  assert.equal(v.fake_stat, `${fakeMajor.toString(16)}:7 620 character special file 4343`, out);
  assert.equal(v.null_write, 'ok');
  assert.equal(v.null_read, '0');
  assert.equal(v.fake_open, 'No such device or address', out);
  assert.equal(v.port_open, 'Operation not permitted', out);
  assert.equal(v.fakehost_stat, `${fakeMajor.toString(16)}:9 604`, out);
  assert.equal(v.fakehost_read, 'No such device or address', out);
  assert.equal(v.fakehost_write, 'Operation not permitted', 'permissions "r": the cgroup refuses writing');
  assert.equal(v.which, 'high', 'the later spec directory wins');
  assert.equal(v.spec_env, 'berth-test');
  assert.equal(v.lowonly, 'unset');
  assert.equal(v.conf, 'from-the-host');
  assert.equal(v.ro, 'Read-only file system');
  const groups = v.groups!.trim().split(/\s+/).map(Number);
  assert.ok(groups.includes(4242) && groups.includes(4343), `Groups: ${v.groups}`);
  // The createRuntime hook ran on the host with the container's state on stdin, once.
  const state = JSON.parse(readFileSync(join(hookDir, 'state.json'), 'utf8')) as { id: string };
  assert.equal(state.id, id);
  unlinkSync(join(hookDir, 'state.json'));
});

test('cdi.k8s.io/ annotations name devices too, and a device only the earlier directory has resolves there', async () => {
  const { out } = await run('echo lowonly=${LOWONLY:-unset}; echo which=${WHICH:-unset}; test -e /dev/cdi-null && echo node=yes || echo node=no', {
    annotations: { 'cdi.k8s.io/berth-test_dev0': 'berth.test/dev=lowonly' },
  });
  const v = lines(out);
  assert.equal(v.lowonly, 'yes');
  assert.equal(v.which, 'unset');
  assert.equal(v.node, 'no');
});

test('unknown, ambiguous and broken: CreateContainer fails naming device and file, leaves nothing, recovers when fixed', async () => {
  const rt = env.berthd.cri.runtime;
  const is = (code: number, text: RegExp) => (e: { code: number; details: string }) => {
    assert.equal(e.code, code, e.details);
    assert.match(e.details, text);
    return true;
  };
  const create = (name: string, devices: string[]) =>
    rt.createContainer({
      podSandboxId: pod.id,
      config: busyboxConfig(env, name, ['true'], { CDIDevices: devices.map((d) => ({ name: d })) }),
      sandboxConfig: pod.config,
    });
  const before = (await rt.listContainers({})).containers.length;

  await assert.rejects(
    create('unknown', ['berth.test/dev=gpu7']),
    is(
      grpcStatus.NOT_FOUND,
      /CDI device "berth\.test\/dev=gpu7" not found; spec files of kind berth\.test\/dev: .*berth-test\.json \(null, null666, fakehost, fake\)/,
    ),
  );
  await assert.rejects(
    create('badname', ['gpu0']),
    is(grpcStatus.INVALID_ARGUMENT, /config\.CDI_devices\[0\]\.name: "gpu0" is not a fully qualified CDI device name/),
  );

  // Written while berthd runs: seen by the next CreateContainer.
  const amb1 = join(high, 'amb-1.json');
  const amb2 = join(high, 'amb-2.yaml');
  writeFileSync(amb1, JSON.stringify({ cdiVersion: '0.3.0', kind: 'berth.test/amb', devices: [{ name: 'x', containerEdits: { env: ['A=1'] } }] }));
  writeFileSync(amb2, 'cdiVersion: 0.3.0\nkind: berth.test/amb\ndevices: [{name: x, containerEdits: {env: [A=2]}}]\n');
  await assert.rejects(
    create('ambiguous', ['berth.test/amb=x']),
    is(grpcStatus.INVALID_ARGUMENT, new RegExp(`"berth\\.test/amb=x" is ambiguous: defined by ${amb1} and ${amb2}`)),
  );
  unlinkSync(amb2);
  assert.equal((await run('echo a=$A', { CDIDevices: [{ name: 'berth.test/amb=x' }] })).out, 'a=1');
  unlinkSync(amb1);

  const broken = join(high, 'broken.json');
  writeFileSync(broken, '{"cdiVersion": "0.3.0", "kind": "berth.test/dev", ');
  await assert.rejects(
    create('broken', ['berth.test/dev=null']),
    is(grpcStatus.INVALID_ARGUMENT, new RegExp(`CDI device "berth\\.test/dev=null": spec file ${broken} cannot be used: not valid JSON`)),
  );
  // Status verbose (berth info) lists the spec files and the one that cannot be used.
  const info = JSON.parse((await rt.status({ verbose: true })).info.cdi!) as {
    dirs: string[];
    specs: { path: string; devices: string[] }[];
    errors: { path: string; error: string }[];
  };
  assert.deepEqual(info.dirs, [low, high]);
  assert.deepEqual(
    info.specs.map((x) => [x.path, x.devices]),
    [
      [join(low, 'berth-test.yaml'), ['null', 'lowonly']],
      [join(high, 'berth-test.json'), ['null', 'null666', 'fakehost', 'fake']],
    ],
  );
  assert.deepEqual(
    info.errors.map((x) => x.path),
    [broken],
  );
  writeFileSync(
    broken,
    JSON.stringify({
      cdiVersion: '0.3.0',
      kind: 'berth.test/other',
      devices: [{ name: 'y', containerEdits: { deviceNodes: [{ path: '/dev/cdi-missing' }] } }],
    }),
  );
  // Valid now, but its device names a host node that does not exist.
  await assert.rejects(
    create('nohost', ['berth.test/other=y']),
    is(
      grpcStatus.NOT_FOUND,
      new RegExp(
        `CDI device "berth\\.test/other=y" \\(${broken}: device "y" containerEdits\\): deviceNodes\\[0\\]: host device "/dev/cdi-missing" is not a device node`,
      ),
    ),
  );
  unlinkSync(broken);

  assert.equal((await rt.listContainers({})).containers.length, before, 'failed creates left no container');
  assert.ok(!existsSync(join(hookDir, 'state.json')), 'no hook ran for a failed create');
});

test('in a pod user namespace a CDI node with another host path is bound from that host node', async () => {
  const upod = await runPod(env, {
    linux: {
      securityContext: {
        namespaceOptions: {
          network: NamespaceMode.POD,
          ipc: NamespaceMode.POD,
          pid: NamespaceMode.CONTAINER,
          usernsOptions: {
            mode: NamespaceMode.POD,
            uids: [{ hostId: 600000, containerId: 0, length: 65536 }],
            gids: [{ hostId: 600000, containerId: 0, length: 65536 }],
          },
        },
      },
    },
  });
  try {
    const { out } = await run(
      'echo stat=$(stat -c "%t:%T" /dev/cdi-null666); echo hi > /dev/cdi-null666 && echo write=ok; echo uid_map=$(cat /proc/self/uid_map | tr -s " ")',
      { CDIDevices: [{ name: 'berth.test/dev=null666' }] },
      upod,
    );
    const v = lines(out);
    assert.equal(v.stat, '1:3', out);
    assert.equal(v.write, 'ok', out);
    assert.equal(v.uid_map, ' 0 600000 65536', 'the container really is in the pod user namespace');
    unlinkSync(join(hookDir, 'state.json'));
  } finally {
    await upod.remove();
  }
});

test('SIGHUP with other cdi.spec_dirs: the next CreateContainer resolves in the new directories', async () => {
  const d = env.berthd;
  const original = readFileSync(d.configFile, 'utf8');
  const reload = async (text: string): Promise<void> => {
    const count = () =>
      d
        .log()
        .split('\n')
        .filter((l) => /msg="config reloaded"/.test(l)).length;
    const seen = count();
    writeFileSync(d.configFile, text);
    d.proc.kill('SIGHUP');
    const deadline = Date.now() + 20_000;
    while (count() === seen) {
      if (Date.now() > deadline) throw new Error(`no reload logged:\n${d.log().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const onlyLow = original.replace(`spec_dirs = [${JSON.stringify(low)}, ${JSON.stringify(high)}]`, `spec_dirs = [${JSON.stringify(low)}]`);
  assert.notEqual(onlyLow, original);
  await reload(onlyLow);
  try {
    assert.equal((await run('echo which=$WHICH', { CDIDevices: [{ name: 'berth.test/dev=null' }] })).out, 'which=low');
    await assert.rejects(
      env.berthd.cri.runtime.createContainer({
        podSandboxId: pod.id,
        config: busyboxConfig(env, 'gone', ['true'], { CDIDevices: [{ name: 'berth.test/dev=fake' }] }),
        sandboxConfig: pod.config,
      }),
      (e: { code: number; details: string }) => e.code === grpcStatus.NOT_FOUND && /"berth\.test\/dev=fake" not found/.test(e.details),
    );
  } finally {
    await reload(original);
  }
  assert.equal((await run('echo which=$WHICH', { CDIDevices: [{ name: 'berth.test/dev=null' }] })).out, 'which=high');
  unlinkSync(join(hookDir, 'state.json'));
});
