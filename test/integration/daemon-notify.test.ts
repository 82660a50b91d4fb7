/**
 * berthd under systemd's Type=notify: with $NOTIFY_SOCKET set it sends READY=1 once the CRI
 * socket answers (so `Before=kubelet.service` means kubelet finds a serving runtime),
 * RELOADING=1 then READY=1 around a SIGHUP reload, and STOPPING=1 on SIGTERM. The processes
 * it starts never inherit $NOTIFY_SOCKET.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBerthd } from '../helpers/berthd.js';
import { startCriEnv } from '../helpers/cri-env.js';
import { busyboxConfig, createContainer, runPod, type TestPod } from '../helpers/cri-container.js';
import { bindNotifySocket } from '../helpers/notify-socket.js';
import { connectCri } from '../../src/cri/server/client.js';

const skip = process.getuid?.() !== 0 ? 'needs root (berthd manages mounts and namespaces)' : false;

/** Environments of the processes (other than `except`) whose environment mentions `needle`. */
function environsMentioning(needle: string, except: number): Array<{ pid: number; env: string[] }> {
  const out: Array<{ pid: number; env: string[] }> = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === except || pid === process.pid) continue;
    let raw: string;
    try {
      raw = readFileSync(`/proc/${pid}/environ`, 'utf8');
    } catch {
      continue; // gone, or not ours to read
    }
    if (raw.includes(needle)) out.push({ pid, env: raw.split('\0').filter(Boolean) });
  }
  return out;
}

test('with NOTIFY_SOCKET set, berthd sends READY=1 when it serves, and STOPPING=1 on SIGTERM', { skip }, async () => {
  const sockDir = mkdtempSync(join(tmpdir(), 'berth-notify-'));
  const sock = bindNotifySocket(join(sockDir, 'notify.sock'));
  const cenv = await startCriEnv({ logLevel: 'info', env: { NOTIFY_SOCKET: sock.path } });
  const d = cenv.berthd;
  let pod: TestPod | undefined;
  try {
    const ready = await sock.waitFor((m) => m.split('\n').includes('READY=1'));
    assert.match(ready, new RegExp(`^MAINPID=${d.proc.pid}$`, 'm'));
    assert.match(ready, /^STATUS=serving on /m);
    // READY is sent only after the CRI server answers: a fresh client gets Version at once.
    const probe = connectCri(d.socket);
    try {
      assert.equal((await probe.runtime.version({ version: 'v1' })).runtimeName, 'berth');
    } finally {
      probe.close();
    }

    // The shim and the container monitors berthd starts (they outlive it, and must never
    // notify for it) lack NOTIFY_SOCKET.
    await d.cri.image.pullImage({ image: { image: cenv.busybox.ref } });
    pod = await runPod(cenv);
    const ctr = await createContainer(cenv, pod, busyboxConfig(cenv, 'notify', ['sleep', '3600']));
    await d.cri.runtime.startContainer({ containerId: ctr });
    const children = environsMentioning(d.state, d.proc.pid!);
    assert.ok(children.length >= 2, `expected berthd's shim and a conmon (environment naming ${d.state}) to be running`);
    for (const c of children) assert.ok(!c.env.some((e) => e.startsWith('NOTIFY_SOCKET=')), `pid ${c.pid} inherited NOTIFY_SOCKET`);

    // Reload: RELOADING=1, then READY=1 again.
    const before = sock.messages.length;
    d.proc.kill('SIGHUP');
    await sock.waitFor((m) => sock.messages.indexOf(m) >= before && m.split('\n').includes('RELOADING=1'));
    await sock.waitFor((m) => sock.messages.indexOf(m) > before && m.split('\n').includes('READY=1'));

    await pod.remove();
    pod = undefined;
    assert.equal(await d.stop(), 0);
    await sock.waitFor((m) => m.split('\n').includes('STOPPING=1'));
  } finally {
    await pod?.remove().catch(() => undefined);
    await cenv.cleanup();
    sock.close();
    rmSync(sockDir, { recursive: true, force: true });
  }
});

test('an abstract NOTIFY_SOCKET (@name) works too', { skip }, async () => {
  const sock = bindNotifySocket(`@berth-notify-test-${process.pid}-${Date.now()}`);
  const d = await startBerthd({ logLevel: 'info', env: { NOTIFY_SOCKET: sock.path } });
  try {
    await sock.waitFor((m) => m.split('\n').includes('READY=1'));
  } finally {
    await d.cleanup();
    sock.close();
  }
});
