/**
 * RunPodSandbox unwinds everything when a step fails: after a failing CNI plugin, an invalid
 * spec (after CNI ADD) or a failing OCI runtime (after the shim took the task) there is no
 * netns, no host-local IP reservation, no shm mount, no bundle or runc container, no extra
 * shim process, no record, and the name is free again (a good retry succeeds).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startCriEnv, type CriEnv, type CriEnvOptions } from '../helpers/cri-env.js';
import { NamespaceMode } from '../../src/api/cri/runtime/v1/api_pb.js';
import { clearCalls, installFakePlugin, isRoot, readCalls, run, uniqueTag } from '../helpers/netns.js';

const skip = !isRoot() ? 'needs root' : false;
const grpcCode = (err: unknown) => (err as { code?: number }).code;
const details = (err: unknown) => String((err as { details?: string }).details ?? (err as Error).message);

/** At most the namespace's one berth-shim, which stays while berthd runs. */
const NODE_SHIMS = 1;
const envs: CriEnv[] = [];
/** Snapshot dirs once the pause image is unpacked (its layers only). */
const snapshotsBaseline = new Map<CriEnv, number>();

async function baseline(env: CriEnv): Promise<void> {
  await env.berthd.cri.image.pullImage({ image: { image: env.pause.ref } });
  snapshotsBaseline.set(env, readdirSync(join(env.berthd.root, 'snapshots', 'overlayfs', 'snapshots')).length);
  // Nothing runs yet: neither shim nor monitor.
  assert.deepEqual(monitorPids(env), [], 'no conmon before any pod');
}
const tmp: string[] = [];
after(async () => {
  for (const e of envs) await e.cleanup();
  for (const d of tmp) rmSync(d, { recursive: true, force: true });
});

function podConfig(name: string) {
  return { metadata: { name, namespace: 'default', uid: `uid-${uniqueTag()}`, attempt: 0 }, hostname: name };
}

/** IPs host-local holds for the test network (files named after addresses). */
function reservedIps(env: CriEnv): string[] {
  const dir = join(dirname(env.confDir), 'ipam', env.net.network);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
}

/** berth shim processes serving this berthd (by their BERTH_SHIM_STATE_DIR). */
function shimPids(env: CriEnv): number[] {
  const want = `BERTH_SHIM_STATE_DIR=${join(env.berthd.state, 's')}`;
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      if (readFileSync(`/proc/${p}/environ`, 'utf8').split('\0').includes(want)) out.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** conmon processes of this berthd (their command lines name its task bundles). */
function monitorPids(env: CriEnv): number[] {
  const want = join(env.berthd.state, 'tasks');
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (cmd[0]?.endsWith('conmon') && cmd.some((a) => a.startsWith(want))) out.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return out;
}

async function settle(check: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return check();
}

/**
 * A berthd whose CNI chain has one fake plugin (`plugin`, configured by `fake`) from a fresh bin
 * dir, its baseline taken; `o` adds to the environment's options.
 */
async function envWithFakePlugin(plugin: string, fake: Record<string, unknown>, o: CriEnvOptions = {}): Promise<{ env: CriEnv; bin: string }> {
  const bin = mkdtempSync(join(tmpdir(), 'berth-fake-cni-'));
  tmp.push(bin);
  await installFakePlugin(bin, plugin);
  const env = await startCriEnv({ ...o, cniBinDirs: [bin], extraPlugins: [{ type: plugin, fake }] });
  envs.push(env);
  await baseline(env);
  return { env, bin };
}
async function assertNothingLeft(env: CriEnv): Promise<void> {
  const netnsDir = join(env.berthd.state, 'netns');
  assert.deepEqual(existsSync(netnsDir) ? readdirSync(netnsDir) : [], [], 'no netns handles');
  assert.deepEqual(reservedIps(env), [], 'no host-local reservation');
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
  assert.ok(!mounts.includes(join(env.berthd.state, 'sandboxes')), 'no shm mount');
  const sbDirs = join(env.berthd.state, 'sandboxes');
  assert.deepEqual(existsSync(sbDirs) ? readdirSync(sbDirs) : [], [], 'no sandbox state dirs');
  const rootSb = join(env.berthd.root, 'sandboxes');
  assert.deepEqual(existsSync(rootSb) ? readdirSync(rootSb) : [], [], 'no sandbox root dirs');
  const bundles = join(env.berthd.state, 'tasks', 'k8s.io');
  assert.deepEqual(existsSync(bundles) ? readdirSync(bundles) : [], [], 'no task bundles');
  const snaps = readdirSync(join(env.berthd.root, 'snapshots', 'overlayfs', 'snapshots')).length;
  assert.equal(snaps, snapshotsBaseline.get(env) ?? snaps, 'no snapshot beyond the image layers');
  const runc = run('runc', ['--root', join(env.berthd.state, 'runc'), 'list', '-q']);
  assert.equal(runc.stdout.trim(), '', 'no runc containers');
  // Only the namespace's shim may remain (it stays while berthd runs), and no monitor.
  assert.ok(await settle(() => shimPids(env).length <= NODE_SHIMS), `shim processes left: ${shimPids(env).join(',')}`);
  assert.ok(await settle(() => monitorPids(env).length === 0), `conmon processes left: ${monitorPids(env).join(',')}`);
  assert.deepEqual((await env.berthd.cri.runtime.listPodSandbox({})).items, [], 'no sandbox listed');
}

test('a failing CNI plugin leaves nothing behind and frees the name', { skip }, async () => {
  const { env } = await envWithFakePlugin('berth-fail', { failOn: 'ADD', error: { code: 101, msg: 'injected ADD failure' } });
  const cfg = podConfig('cni-fail');
  await assert.rejects(env.berthd.cri.runtime.runPodSandbox({ config: cfg }), (e) => grpcCode(e) !== 0 && details(e).includes('injected ADD failure'));
  await assertNothingLeft(env);
  // Same name again: the reservation was released (fails again at CNI, not ALREADY_EXISTS).
  await assert.rejects(env.berthd.cri.runtime.runPodSandbox({ config: cfg }), (e) => grpcCode(e) !== 6 && details(e).includes('injected ADD failure'));
});

test("failures after CNI ADD (the pause's runtime fails) unwind network, mounts, snapshot, shim and name", { skip }, async () => {
  // A pass-through plugin in the chain records every ADD and DEL it sees.
  const { env, bin } = await envWithFakePlugin(
    'berth-record',
    {},
    { extraToml: `[runtimes.broken]\ntype = "io.containerd.berth.v1"\nbinary = "/bin/false"\n` },
  );
  const rt = env.berthd.cri.runtime;

  // A host-wide sysctl is refused before anything is made (nothing to unwind).
  const cfg = podConfig('late-fail');
  await assert.rejects(
    rt.runPodSandbox({ config: { ...cfg, linux: { sysctls: { 'kernel.core_pattern': '|/bin/evil' } } } }),
    (e) => grpcCode(e) === 3 && details(e).includes('kernel.core_pattern'),
  );
  assert.deepEqual(await readCalls(bin), [], 'refused before CNI');
  await assertNothingLeft(env);

  // The OCI runtime fails while CNI ADD runs (the pause is created beside it): everything made
  // so far is undone, the network included — the plugin saw an ADD and then a DEL.
  await assert.rejects(
    rt.runPodSandbox({ config: cfg, runtimeHandler: 'broken' }),
    (e) => grpcCode(e) !== 0 && grpcCode(e) !== 6 && /false|runc|exit/i.test(details(e)),
  );
  const cmds = (await readCalls(bin)).map((c) => c.env.CNI_COMMAND);
  assert.ok(cmds.indexOf('ADD') >= 0 && cmds.lastIndexOf('DEL') > cmds.indexOf('ADD'), `CNI ADD then DEL: ${cmds.join(',')}`);
  await assertNothingLeft(env);
  await clearCalls(bin);

  // A good retry with the same name succeeds.
  const { podSandboxId } = await rt.runPodSandbox({ config: cfg });
  assert.equal((await rt.listPodSandbox({})).items.length, 1);
  assert.equal(reservedIps(env).length, 1, 'the good pod holds one IP');
  // The pod's pinned network, IPC and UTS namespace handles.
  assert.equal(readdirSync(join(env.berthd.state, 'netns')).length, 3);
  await rt.stopPodSandbox({ podSandboxId });
  await rt.removePodSandbox({ podSandboxId });
  await assertNothingLeft(env);
});

test('a failure after CNI ADD and after the pause started (the last step, the READY record) unwinds the pause and the network too', { skip }, async () => {
  const { env, bin } = await envWithFakePlugin('berth-record', {}, { env: { BERTH_FAULT: 'RunPodSandbox.record-ready:fail' } });
  const rt = env.berthd.cri.runtime;
  // A shared pid namespace: this pod has a pause process, started before the READY record.
  const cfg = { ...podConfig('after-pause'), linux: { securityContext: { namespaceOptions: { pid: NamespaceMode.POD } } } };
  await assert.rejects(rt.runPodSandbox({ config: cfg }), (e) => grpcCode(e) === 14 && /fault/.test(details(e)));
  const cmds = (await readCalls(bin)).map((c) => c.env.CNI_COMMAND);
  assert.ok(cmds.indexOf('ADD') >= 0 && cmds.lastIndexOf('DEL') > cmds.indexOf('ADD'), `CNI ADD then DEL: ${cmds.join(',')}`);
  await assertNothingLeft(env);
});
