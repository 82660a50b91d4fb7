/**
 * CNI plugin faults (issue 12): a plugin that hangs in ADD while a child of its own holds its
 * output pipes (cni.plugin_timeout: the call fails DeadlineExceeded, the plugin's whole process
 * group is killed, nothing is left and the name is free), and a plugin that fails on DEL (the
 * pod stays NOTREADY holding what DEL did not release; each later Stop/Remove retries; once
 * DEL works, RemovePodSandbox leaves nothing behind).
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PodSandboxState } from '../../src/api/cri/runtime/v1/api_pb.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { inventory, settledLeaks, type Inventory } from '../helpers/faults.js';
import { isRoot, uniqueTag } from '../helpers/netns.js';
import { ended, until } from '../helpers/process.js';

const skip = !isRoot() ? 'needs root' : false;
const bin = mkdtempSync(join(tmpdir(), 'berth-fault-cni-'));
let env: CriEnv | undefined;
let baseline: Inventory;

// Behaves as its flag files say: `hang-add` (ADD starts a `sleep` that inherits stdout and
// stderr, records both pids in `pids`, and never answers), `fail-del` (DEL fails, code 111).
// Otherwise ADD passes prevResult on and DEL succeeds.
const PLUGIN = `
const fs = require('fs'); const path = require('path'); const cp = require('child_process');
const dir = path.dirname(process.argv[1]);
let input = ''; process.stdin.setEncoding('utf8'); process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', () => {
  const conf = input ? JSON.parse(input) : {}; const cmd = process.env.CNI_COMMAND;
  fs.appendFileSync(path.join(dir, 'calls'), cmd + '\\n');
  if (cmd === 'ADD' && fs.existsSync(path.join(dir, 'hang-add'))) {
    const child = cp.spawn('sleep', ['3600'], { stdio: ['ignore', 'inherit', 'inherit'] });
    fs.appendFileSync(path.join(dir, 'pids'), process.pid + '\\n' + child.pid + '\\n');
    setInterval(() => undefined, 1 << 30);
    return;
  }
  if (cmd === 'DEL' && fs.existsSync(path.join(dir, 'fail-del'))) {
    process.stdout.write(JSON.stringify({ cniVersion: conf.cniVersion, code: 111, msg: 'injected DEL failure' }));
    process.exit(1);
  }
  if (cmd === 'ADD') process.stdout.write(JSON.stringify(conf.prevResult));
  if (cmd === 'VERSION') process.stdout.write(JSON.stringify({ cniVersion: '1.0.0', supportedVersions: ['0.4.0', '1.0.0'] }));
  process.exit(0);
});
`;

before(async () => {
  if (skip) return;
  writeFileSync(join(bin, 'berth-faulty'), `#!${process.execPath}\n${PLUGIN}`);
  chmodSync(join(bin, 'berth-faulty'), 0o755);
  env = await startCriEnv({ cniBinDirs: [bin], extraPlugins: [{ type: 'berth-faulty' }], cniToml: 'plugin_timeout = 3\n' });
  await env.berthd.cri.image.pullImage({ image: { image: env.pause.ref } });
  baseline = inventory(env);
});
after(async () => {
  await env?.cleanup();
  rmSync(bin, { recursive: true, force: true });
});

const rt = () => env!.berthd.cri.runtime;
const details = (err: unknown) => String((err as { details?: string }).details ?? (err as Error).message);
const grpcCode = (err: unknown) => (err as { code?: number }).code;
function podConfig(name: string) {
  return { metadata: { name, namespace: 'default', uid: `uid-${uniqueTag()}`, attempt: 0 }, hostname: name };
}

test('a CNI plugin that hangs is killed with its children after cni.plugin_timeout; nothing is left', { skip }, async () => {
  writeFileSync(join(bin, 'hang-add'), '');
  const cfg = podConfig('cni-hang');
  // Without the group kill the call never ends (the sleep holds the pipes): the deadline fails it.
  await assert.rejects(rt().runPodSandbox({ config: cfg }, { timeoutMs: 60_000 }), (e) => {
    assert.equal(grpcCode(e), 4, `DEADLINE_EXCEEDED, got ${grpcCode(e)} ${details(e)}`);
    assert.match(details(e), /berth-faulty .*ADD timed out after 3000 ms \(cni.plugin_timeout\)/);
    return true;
  });
  const pids = readFileSync(join(bin, 'pids'), 'utf8').split('\n').filter(Boolean).map(Number);
  assert.equal(pids.length, 2, 'the plugin and its child ran');
  await until(() => pids.every(ended), 'the plugin and its child killed');
  assert.deepEqual(await settledLeaks(env!, baseline, { pluginDirs: [bin] }), []);
  rmSync(join(bin, 'hang-add'));
  const id = (await rt().runPodSandbox({ config: cfg })).podSandboxId;
  await rt().stopPodSandbox({ podSandboxId: id });
  await rt().removePodSandbox({ podSandboxId: id });
  assert.deepEqual(await settledLeaks(env!, baseline, { pluginDirs: [bin] }), []);
});

test('a CNI plugin that fails on DEL: the pod stays NOTREADY with its network, remove retries and then leaves nothing', { skip }, async () => {
  const id = (await rt().runPodSandbox({ config: podConfig('cni-del-fail') })).podSandboxId;
  const held = inventory(env!);
  assert.equal(held.ips.length, baseline.ips.length + 1, 'the pod holds an IP');
  writeFileSync(join(bin, 'fail-del'), '');
  await assert.rejects(rt().stopPodSandbox({ podSandboxId: id }), (e) => details(e).includes('injected DEL failure'));
  const s = await rt().podSandboxStatus({ podSandboxId: id });
  assert.equal(s.status?.state, PodSandboxState.SANDBOX_NOTREADY);
  // DEL stops at the failing plugin (the last in reverse order still to run is bridge): the
  // IP and the netns stay, owned by the record, for a retry.
  const mid = inventory(env!);
  assert.deepEqual(mid.ips, held.ips, 'IP still reserved');
  assert.ok(existsSync(join(env!.berthd.state, 'netns', id)), 'netns kept for the retry');
  assert.ok(
    mid.sandboxes.some((x) => x.startsWith(id)),
    'record kept',
  );
  await assert.rejects(rt().removePodSandbox({ podSandboxId: id }), (e) => details(e).includes('injected DEL failure'));
  assert.equal((await rt().listPodSandbox({})).items.find((p) => p.id === id)?.state, PodSandboxState.SANDBOX_NOTREADY, 'still listed after a failed remove');
  const dels = readFileSync(join(bin, 'calls'), 'utf8')
    .split('\n')
    .filter((c) => c === 'DEL').length;
  rmSync(join(bin, 'fail-del'));
  await rt().removePodSandbox({ podSandboxId: id });
  assert.equal(
    readFileSync(join(bin, 'calls'), 'utf8')
      .split('\n')
      .filter((c) => c === 'DEL').length,
    dels + 1,
    'remove ran DEL again',
  );
  assert.deepEqual(
    (await rt().listPodSandbox({})).items.filter((p) => p.id === id),
    [],
  );
  assert.deepEqual(await settledLeaks(env!, baseline, { pluginDirs: [bin] }), []);
});
