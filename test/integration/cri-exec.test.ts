/**
 * ExecSync, Exec/Attach/PortForward over the streaming server, and CheckpointContainer, end to
 * end: real berthd, berth-shim, runc, CNI and registry.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { status as grpcStatus } from '@grpc/grpc-js';
import { ContainerState } from '../../src/api/cri/runtime/v1/api_pb.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { busyboxConfig, createContainer, runPod, waitForState, type TestPod } from '../helpers/cri-container.js';
import { wsConnect } from '../helpers/ws-client.js';
import { collect, openStream, spdyExec, spdyUpgrade } from '../helpers/spdy-client.js';
import { knobFileOfPid, readProcs } from '../helpers/cgroup.js';

let env: CriEnv;
let pod: TestPod;
/** A long-running container most tests exec into. */
let box: string;

before(async () => {
  env = await startCriEnv();
  await env.berthd.cri.image.pullImage({ image: { image: env.busybox.ref } });
  pod = await runPod(env);
  box = await createContainer(env, pod, busyboxConfig(env, 'box', ['sh', '-c', 'echo hello-from-pod > /tmp/index.html; exec httpd -f -p 8080 -h /tmp']));
  await env.berthd.cri.runtime.startContainer({ containerId: box });
  await waitForState(env, box, ContainerState.CONTAINER_RUNNING);
});

after(async () => {
  await pod?.remove();
  await env?.cleanup();
});

const code = (c: number) => (e: unknown) => (e as { code?: number }).code === c;

/** Host pids in the container's cgroup (pids controller, v1; unified otherwise). */
async function containerProcs(id: string): Promise<number[]> {
  const st = await env.berthd.cri.runtime.containerStatus({ containerId: id, verbose: true });
  const pid = (JSON.parse(st.info.info!) as { pid: number }).pid;
  return readProcs(knobFileOfPid(pid, 'procs'));
}

test('ExecSync returns stdout, stderr and the exit code, with the container environment and cwd', async () => {
  const r = await env.berthd.cri.runtime.execSync({ containerId: box, cmd: ['sh', '-c', 'echo out; echo err >&2; echo "$PATH"; pwd; exit 7'], timeout: 10n });
  assert.equal(r.exitCode, 7);
  assert.equal(Buffer.from(r.stderr).toString(), 'err\n');
  const lines = Buffer.from(r.stdout).toString().split('\n');
  assert.equal(lines[0], 'out');
  assert.match(lines[1]!, /\/bin/);
  assert.equal(lines[2], '/');
  const ok = await env.berthd.cri.runtime.execSync({ containerId: box.slice(0, 12), cmd: ['true'], timeout: 0n });
  assert.equal(ok.exitCode, 0);
});

test('ExecSync output is capped at 16 MiB per stream and the command still completes', async () => {
  const r = await env.berthd.cri.runtime.execSync({ containerId: box, cmd: ['sh', '-c', 'head -c 17000000 /dev/zero; echo done >&2'], timeout: 60n });
  assert.equal(r.exitCode, 0);
  assert.equal(r.stdout.length, 16 * 1024 * 1024);
  assert.equal(Buffer.from(r.stderr).toString(), 'done\n');
});

test('ExecSync past its timeout fails DeadlineExceeded and leaves no process behind', async () => {
  const before = await containerProcs(box);
  assert.equal(before.length, 1, 'only the container init runs');
  // The command would run 300 s: the error names the 1 s timeout, and no process is left.
  await assert.rejects(
    env.berthd.cri.runtime.execSync({ containerId: box, cmd: ['sh', '-c', 'sleep 300 & sleep 300; echo never'], timeout: 1n }),
    (e: unknown) => code(grpcStatus.DEADLINE_EXCEEDED)(e) && /timed out after 1s/.test(String((e as Error).message)),
  );
  assert.deepEqual(await containerProcs(box), before);
});

test('ExecSync, Exec and Attach refuse unknown and non-running containers; PortForward an unknown pod', async () => {
  await assert.rejects(env.berthd.cri.runtime.execSync({ containerId: 'nope', cmd: ['true'] }), code(grpcStatus.NOT_FOUND));
  await assert.rejects(env.berthd.cri.runtime.exec({ containerId: 'nope', cmd: ['true'], stdout: true }), code(grpcStatus.NOT_FOUND));
  const created = await createContainer(env, pod, busyboxConfig(env, 'idle', ['true']));
  try {
    await assert.rejects(env.berthd.cri.runtime.execSync({ containerId: created, cmd: ['true'] }), code(grpcStatus.FAILED_PRECONDITION));
    await assert.rejects(env.berthd.cri.runtime.exec({ containerId: created, cmd: ['true'], stdout: true }), code(grpcStatus.FAILED_PRECONDITION));
    await assert.rejects(env.berthd.cri.runtime.attach({ containerId: created, stdout: true }), code(grpcStatus.FAILED_PRECONDITION));
  } finally {
    await env.berthd.cri.runtime.removeContainer({ containerId: created });
  }
  await assert.rejects(env.berthd.cri.runtime.portForward({ podSandboxId: 'nope', port: [80] }), code(grpcStatus.NOT_FOUND));
  await assert.rejects(env.berthd.cri.runtime.execSync({ containerId: box, cmd: [] }), code(grpcStatus.INVALID_ARGUMENT));
});

test('Exec over WebSocket: stdin reaches the process and its close is EOF; exit code on the error channel', async () => {
  const { url } = await env.berthd.cri.runtime.exec({
    containerId: box,
    cmd: ['sh', '-c', 'cat; echo err >&2; exit 3'],
    stdin: true,
    stdout: true,
    stderr: true,
  });
  const s = await wsConnect(url, ['v5.channel.k8s.io']);
  s.send(0, 'through stdin\n');
  s.send(255, Buffer.from([0]));
  await s.closed;
  assert.equal(s.text(1), 'through stdin\n');
  assert.equal(s.text(2), 'err\n');
  const st = JSON.parse(s.text(3)) as { reason: string; details: { causes: Array<{ message: string }> } };
  assert.equal(st.reason, 'NonZeroExitCode');
  assert.equal(st.details.causes[0]!.message, '3');
});

test('Exec over WebSocket with a TTY: resize reaches the terminal', async () => {
  const { url } = await env.berthd.cri.runtime.exec({ containerId: box, cmd: ['sh', '-c', 'sleep 1; stty size'], tty: true, stdout: true });
  const s = await wsConnect(url, ['v4.channel.k8s.io']);
  s.send(4, JSON.stringify({ Width: 101, Height: 37 }));
  await s.closed;
  assert.match(s.text(1), /37 101/);
  assert.equal((JSON.parse(s.text(3)) as { status: string }).status, 'Success');
});

test('Attach streams the container output (followed from its log) until the client leaves', async () => {
  const ticker = await createContainer(env, pod, busyboxConfig(env, 'ticker', ['sh', '-c', 'i=0; while :; do echo tick$i; i=$((i+1)); sleep 0.1; done']));
  try {
    await env.berthd.cri.runtime.startContainer({ containerId: ticker });
    const { url } = await env.berthd.cri.runtime.attach({ containerId: ticker, stdout: true, stderr: true });
    const s = await wsConnect(url, ['v4.channel.k8s.io']);
    const end = Date.now() + 10_000;
    while (!/tick\d+\ntick\d+\n/.test(s.text(1)) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    assert.match(s.text(1), /tick\d+\ntick\d+\n/);
    s.ws.close();
    await s.closed;
  } finally {
    await env.berthd.cri.runtime.stopContainer({ containerId: ticker, timeout: 0n }).catch(() => undefined);
    await env.berthd.cri.runtime.removeContainer({ containerId: ticker }).catch(() => undefined);
  }
});

for (const withLog of [true, false]) {
  for (const tty of [false, true]) {
    test(
      `Attach with stdin to sh (${withLog ? 'with' : 'without'} log_path, ${tty ? 'tty' : 'no tty'}): input runs, output comes back, stdin_once ends the stream`,
      { timeout: 90_000 },
      async () => {
        const name = `att-${withLog ? 'log' : 'nolog'}-${tty ? 'tty' : 'pipe'}`;
        const id = await createContainer(
          env,
          pod,
          busyboxConfig(env, name, ['sh'], { stdin: true, stdinOnce: true, tty, logPath: withLog ? `${name}.log` : '' }),
        );
        try {
          await env.berthd.cri.runtime.startContainer({ containerId: id });
          await waitForState(env, id, ContainerState.CONTAINER_RUNNING);
          const { url } = await env.berthd.cri.runtime.attach({ containerId: id, stdin: true, stdout: true, stderr: !tty, tty });
          // With a tty the shell never sees EOF from a closed stdin (the pty stays open): it exits itself.
          const r = await spdyExec(url, {
            protocols: ['v4.channel.k8s.io'],
            stdin: tty ? 'echo hello; exit\n' : 'echo hello\n',
            stdout: true,
            stderr: !tty,
            tty,
          });
          assert.match(r.stdout, /(^|\n)hello\r?\n/);
          // stdin_once: the container's stdin was closed when the attach ended, so sh exited.
          const st = await waitForState(env, id, ContainerState.CONTAINER_EXITED);
          assert.equal(st.exitCode, 0);
        } finally {
          await env.berthd.cri.runtime.stopContainer({ containerId: id, timeout: 0n }).catch(() => undefined);
          await env.berthd.cri.runtime.removeContainer({ containerId: id }).catch(() => undefined);
        }
      },
    );
  }
}

test('PortForward reaches a server on 127.0.0.1 inside the pod network namespace', async () => {
  const { url } = await env.berthd.cri.runtime.portForward({ podSandboxId: pod.id, port: [8080] });
  const s = await wsConnect(`${url}?ports=8080`, ['v4.channel.k8s.io']);
  const end = Date.now() + 5000;
  while ((s.channels.get(0)?.length ?? 0) < 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  s.send(0, 'GET /index.html HTTP/1.0\r\n\r\n');
  const text = () => Buffer.concat((s.channels.get(0) ?? []).slice(1)).toString();
  while (!text().includes('hello-from-pod') && Date.now() < end + 5000) await new Promise((r) => setTimeout(r, 20));
  assert.match(text(), /^HTTP\/1\.[01] 200/);
  assert.match(text(), /hello-from-pod/);
  s.ws.close();
  await s.closed;
});

test('PortForward over SPDY: 20 connections at once reach the pod, and berthd starts no process for any of them', async () => {
  const berthdPid = env.berthd.proc.pid as number;
  const kids = (): string[] =>
    readdirSync(`/proc/${berthdPid}/task`).flatMap((t) => readFileSync(`/proc/${berthdPid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean));
  const before = new Set(kids());
  const { url } = await env.berthd.cri.runtime.portForward({ podSandboxId: pod.id, port: [] });
  const { conn } = await spdyUpgrade(url, ['portforward.k8s.io']);
  try {
    // Open all 20 forwarded connections first; the pod's httpd waits for their requests.
    const open = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const error = await openStream(conn, { streamtype: 'error', port: '8080', requestid: String(i) });
        const errorText = collect(error);
        error.end();
        const data = await openStream(conn, { streamtype: 'data', port: '8080', requestid: String(i) });
        return { data, body: collect(data), errorText };
      }),
    );
    // While they are open: berthd forwards them from its worker thread, no nsenter or helper process.
    const started = kids()
      .filter((k) => !before.has(k) && existsSync(`/proc/${k}/comm`))
      .map((k) => readFileSync(`/proc/${k}/comm`, 'utf8').trim());
    assert.ok(!started.includes('nsenter') && !started.includes('node'), `berthd started ${started.join(', ')}`);
    for (const o of open) o.data.end('GET /index.html HTTP/1.0\r\n\r\n');
    for (const o of open) {
      assert.match((await o.body).toString(), /^HTTP\/1\.[01] 200[\s\S]*hello-from-pod/);
      assert.equal((await o.errorText).toString(), '', 'no error on the error stream');
    }
    // A port nothing listens on in the pod: the reason comes back on the error stream.
    const error = await openStream(conn, { streamtype: 'error', port: '8081', requestid: 'closed' });
    const errorText = collect(error);
    error.end();
    const data = await openStream(conn, { streamtype: 'data', port: '8081', requestid: 'closed' });
    data.end();
    assert.match((await errorText).toString(), /port-forward to port 8081 in pod sandbox .*ECONNREFUSED/);
  } finally {
    conn.destroy();
  }
});

test('CheckpointContainer writes a tar archive where CRIU works here, else fails FailedPrecondition quoting CRIU', async (t) => {
  const location = join(tmpdir(), `berth-ckpt-${process.pid}.tar`);
  // The host decides which must happen (criu 3.17 fails `criu check` on some kernels).
  const criuWorks = spawnSync('criu', ['check'], { stdio: 'ignore' }).status === 0;
  t.diagnostic(`criu check ${criuWorks ? 'passes' : 'fails'} here`);
  if (criuWorks) {
    await env.berthd.cri.runtime.checkpointContainer({ containerId: box, location, timeout: 60n });
    assert.ok(existsSync(location), 'archive written');
    assert.ok(readFileSync(location).includes('spec.dump'));
    rmSync(location, { force: true });
  } else {
    await assert.rejects(env.berthd.cri.runtime.checkpointContainer({ containerId: box, location, timeout: 60n }), (e: unknown) => {
      assert.equal((e as { code?: number }).code, grpcStatus.FAILED_PRECONDITION, String(e));
      assert.match(String((e as Error).message), /criu/i);
      return true;
    });
    assert.ok(!existsSync(location), 'no partial archive');
  }
  await assert.rejects(env.berthd.cri.runtime.checkpointContainer({ containerId: box, location: 'relative.tar' }), code(grpcStatus.INVALID_ARGUMENT));
  // The container survives either way.
  assert.equal((await env.berthd.cri.runtime.containerStatus({ containerId: box })).status?.state, ContainerState.CONTAINER_RUNNING);
});
