/**
 * The streaming server against real clients: berth's SPDY/3.1 client (test/helpers), the `ws`
 * WebSocket client, and kubectl when it is installed, over a backend that runs real host
 * processes (sh, cat, script for a TTY) and dials real TCP sockets on loopback.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { StreamingServer } from '../../src/streaming/server.js';
import type { StreamIO, StreamingBackend, TerminalSize } from '../../src/streaming/types.js';
import { HttpError, collect, openStream, spdyExec, spdyUpgrade } from '../helpers/spdy-client.js';
import { wsConnect } from '../helpers/ws-client.js';

/** Runs commands on the host; records resize events per container id. */
class HostBackend implements StreamingBackend {
  readonly resizes = new Map<string, TerminalSize[]>();
  readonly attached: string[] = [];

  async exec(containerId: string, cmd: string[], io: StreamIO): Promise<{ exitCode: number }> {
    const sizes: TerminalSize[] = [];
    this.resizes.set(containerId, sizes);
    void (async () => {
      for await (const s of io.resize) sizes.push(s);
    })();
    // A TTY via script(1): the command sees a pseudo-terminal; -e passes its exit code through.
    const [file, args] = io.tty ? ['script', ['-qfec', cmd.map(shellQuote).join(' '), '/dev/null']] : [cmd[0] as string, cmd.slice(1)];
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin.on('error', () => {});
    if (io.stdin) io.stdin.pipe(child.stdin);
    else child.stdin.end();
    child.stdout.on('data', (d: Buffer) => io.stdout?.write(d));
    child.stderr.on('data', (d: Buffer) => (io.tty ? io.stdout : io.stderr)?.write(d));
    const code = await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c: number | null) => resolve(c ?? 128));
    });
    io.stdin?.unpipe(child.stdin);
    return { exitCode: code };
  }

  async attach(containerId: string, io: StreamIO): Promise<void> {
    this.attached.push(containerId);
    io.stdout?.write(`attached to ${containerId}\n`);
    // Echo stdin until the client closes it, like attaching to `cat`.
    if (io.stdin) for await (const chunk of io.stdin) io.stdout?.write(chunk as Buffer);
  }

  portForward(_pod: string, port: number, stream: Duplex): Promise<void> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1');
      sock.once('connect', () => {
        stream.pipe(sock);
        sock.pipe(stream);
      });
      sock.once('error', reject);
      sock.once('close', () => resolve());
      stream.once('close', () => sock.destroy());
    });
  }
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

const backend = new HostBackend();
let server: StreamingServer;
let echo: net.Server;
let echoPort = 0;
let closedPort = 0;

before(async () => {
  server = new StreamingServer({ address: '127.0.0.1:0', backend, tokenTtlMs: 5000, streamCreationTimeoutMs: 3000 });
  await server.start();
  echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  echoPort = (echo.address() as net.AddressInfo).port;
  // A port nobody listens on: bind, read the number, close.
  const tmp = net.createServer();
  await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', () => r()));
  closedPort = (tmp.address() as net.AddressInfo).port;
  await new Promise<void>((r) => tmp.close(() => r()));
});

after(async () => {
  await server.stop();
  await new Promise<void>((r) => echo.close(() => r()));
});

const exec = (cmd: string[], o: { tty?: boolean; stdin?: boolean; stderr?: boolean } = {}) =>
  server.getExec({ containerId: 'c1', cmd, tty: o.tty ?? false, stdin: o.stdin ?? false, stdout: true, stderr: o.stderr ?? !o.tty });

// ---------------- SPDY ----------------

test('spdy exec separates stdout and stderr and reports exit code 3 as NonZeroExitCode on the error stream', async () => {
  const r = await spdyExec(exec(['sh', '-c', 'echo out; echo err >&2; exit 3']), { stderr: true });
  assert.equal(r.protocol, 'v4.channel.k8s.io');
  assert.equal(r.stdout, 'out\n');
  assert.equal(r.stderr, 'err\n');
  const status = JSON.parse(r.error);
  assert.equal(status.status, 'Failure');
  assert.equal(status.reason, 'NonZeroExitCode');
  assert.deepEqual(status.details.causes, [{ reason: 'ExitCode', message: '3' }]);
});

test('spdy exec that succeeds reports a Success status', async () => {
  const r = await spdyExec(exec(['sh', '-c', 'printf ok']), { stderr: true });
  assert.equal(r.stdout, 'ok');
  assert.equal(JSON.parse(r.error).status, 'Success');
});

test('spdy exec delivers stdin and closes it so the process sees EOF', async () => {
  const url = server.getExec({ containerId: 'c1', cmd: ['sh', '-c', 'cat; echo EOF-SEEN'], tty: false, stdin: true, stdout: true, stderr: false });
  const r = await spdyExec(url, { stdin: 'hello stdin\n' });
  assert.equal(r.stdout, 'hello stdin\nEOF-SEEN\n');
  assert.equal(JSON.parse(r.error).status, 'Success');
});

test('spdy v1 protocol reports a failed exit as plain text on the error stream', async () => {
  const r = await spdyExec(exec(['sh', '-c', 'exit 5']), { protocols: ['channel.k8s.io'], stderr: true });
  assert.equal(r.protocol, 'channel.k8s.io');
  assert.match(r.error, /non-zero exit code/);
  assert.doesNotMatch(r.error, /^\{/);
});

test('spdy exec with a TTY runs on a terminal and delivers resize events to the backend', async () => {
  const url = server.getExec({
    containerId: 'tty-spdy',
    cmd: ['sh', '-c', 'sleep 0.3; test -t 1 && echo is-a-tty'],
    tty: true,
    stdin: false,
    stdout: true,
    stderr: false,
  });
  const r = await spdyExec(url, { tty: true, resize: [{ Width: 100, Height: 40 }] });
  assert.match(r.stdout, /is-a-tty/);
  assert.equal(JSON.parse(r.error).status, 'Success');
  assert.deepEqual(backend.resizes.get('tty-spdy'), [{ width: 100, height: 40 }]);
});

test('spdy exec streams 1 MiB of output to a peer that never sends WINDOW_UPDATE (like Go spdystream)', async () => {
  const r = await spdyExec(exec(['sh', '-c', 'head -c 1048576 /dev/zero | tr "\\0" x']), { sendWindowUpdates: false, stderr: true });
  assert.equal(r.stdout.length, 1048576);
  assert.equal(JSON.parse(r.error).status, 'Success');
});

test('spdy exec streams 1 MiB of output to a flow-controlling peer', async () => {
  const r = await spdyExec(exec(['sh', '-c', 'head -c 1048576 /dev/zero | tr "\\0" y']), { stderr: true });
  assert.equal(r.stdout.length, 1048576);
  assert.ok(/^y+$/.test(r.stdout));
});

test('spdy attach streams stdin back through the backend', async () => {
  const url = server.getAttach({ containerId: 'att1', tty: false, stdin: true, stdout: true, stderr: false });
  const r = await spdyExec(url, { stdin: 'ping\n' });
  assert.equal(r.stdout, 'attached to att1\nping\n');
  assert.equal(JSON.parse(r.error).status, 'Success');
});

test('a used token, an expired token and an unknown token answer 404', async () => {
  const url = exec(['true']);
  await spdyExec(url, { stderr: true });
  await assert.rejects(spdyUpgrade(url, ['v4.channel.k8s.io']), (e: unknown) => e instanceof HttpError && e.status === 404);
  await assert.rejects(
    spdyUpgrade(`${server.url}/exec/AAAAAAAAAAAAAAAAAAAAAA`, ['v4.channel.k8s.io']),
    (e: unknown) => e instanceof HttpError && e.status === 404,
  );
  const short = new StreamingServer({ address: '127.0.0.1:0', backend, tokenTtlMs: 30 });
  await short.start();
  try {
    const expiring = short.getExec({ containerId: 'c1', cmd: ['true'], tty: false, stdin: false, stdout: true, stderr: false });
    await new Promise((r) => setTimeout(r, 80));
    await assert.rejects(spdyUpgrade(expiring, ['v4.channel.k8s.io']), (e: unknown) => e instanceof HttpError && e.status === 404);
  } finally {
    await short.stop();
  }
});

test('a garbage upgrade answers 400 and the server keeps serving', async () => {
  await assert.rejects(
    spdyUpgrade(exec(['true']), ['v4.channel.k8s.io'], { upgradeHeader: 'h2c-garbage' }),
    (e: unknown) => e instanceof HttpError && e.status === 400,
  );
  await assert.rejects(spdyUpgrade(exec(['true']), []), (e: unknown) => e instanceof HttpError && e.status === 400);
  await assert.rejects(
    spdyUpgrade(exec(['true']), ['v99.channel.k8s.io']),
    (e: unknown) => e instanceof HttpError && e.status === 403 && String(e.headers['x-accepted-stream-protocol-versions']).includes('v4.channel.k8s.io'),
  );
  // Raw garbage bytes on a fresh connection.
  await new Promise<void>((resolve) => {
    const u = new URL(server.url);
    const s = net.connect(Number(u.port), u.hostname);
    s.on('data', () => {});
    s.on('error', () => resolve());
    s.on('close', () => resolve());
    s.write('\x16\x03\x01garbage\r\n\r\n');
  });
  const plain = await fetch(exec(['true']));
  assert.equal(plain.status, 400);
  const r = await spdyExec(exec(['sh', '-c', 'echo still-up']), { stderr: true });
  assert.equal(r.stdout, 'still-up\n');
});

test('spdy port-forward pipes a connection to a TCP echo server and reports dial errors on the error stream', async () => {
  const { conn } = await spdyUpgrade(server.getPortForward({ podSandboxId: 'pod1', port: [] }), ['portforward.k8s.io']);
  try {
    const error = await openStream(conn, { streamtype: 'error', port: String(echoPort), requestid: '0' });
    error.end();
    const errText = collect(error);
    const data = await openStream(conn, { streamtype: 'data', port: String(echoPort), requestid: '0' });
    const echoed = collect(data);
    data.write('hello through spdy');
    data.end();
    assert.equal((await echoed).toString(), 'hello through spdy');
    assert.equal((await errText).toString(), '');

    const error2 = await openStream(conn, { streamtype: 'error', port: String(closedPort), requestid: '1' });
    error2.end();
    const err2 = collect(error2);
    const data2 = await openStream(conn, { streamtype: 'data', port: String(closedPort), requestid: '1' });
    data2.resume();
    assert.match((await err2).toString(), new RegExp(`error forwarding port ${closedPort} to pod pod1: .*ECONNREFUSED`));
  } finally {
    conn.destroy();
  }
});

test('spdy port-forward refuses a stream without a valid port header', async () => {
  const { conn } = await spdyUpgrade(server.getPortForward({ podSandboxId: 'pod1', port: [] }), ['portforward.k8s.io']);
  try {
    await assert.rejects(openStream(conn, { streamtype: 'data', port: 'http', requestid: '0' }), /reset/);
    assert.ok((await conn.ping()) >= 0);
  } finally {
    conn.destroy();
  }
});

// ---------------- WebSocket ----------------

test('websocket v5 exec: stdout/stderr channels, stdin closed via channel 255, exit code on channel 3', async () => {
  const url = server.getExec({ containerId: 'c1', cmd: ['sh', '-c', 'cat; echo err >&2; exit 3'], tty: false, stdin: true, stdout: true, stderr: true });
  const s = await wsConnect(url, ['v5.channel.k8s.io', 'v4.channel.k8s.io']);
  assert.equal(s.protocol, 'v5.channel.k8s.io');
  s.send(0, 'from stdin\n');
  s.send(255, Buffer.from([0]));
  await s.closed;
  assert.equal(s.text(1), 'from stdin\n');
  assert.equal(s.text(2), 'err\n');
  const status = JSON.parse(s.text(3));
  assert.equal(status.reason, 'NonZeroExitCode');
  assert.equal(status.details.causes[0].message, '3');
});

test('websocket v4 base64 exec carries output as base64 text messages', async () => {
  const s = await wsConnect(exec(['sh', '-c', 'printf "\\001\\002binary"']), ['v4.base64.channel.k8s.io']);
  assert.equal(s.protocol, 'v4.base64.channel.k8s.io');
  await s.closed;
  assert.deepEqual(Buffer.concat(s.channels.get(1) ?? []), Buffer.from('\x01\x02binary', 'latin1'));
  assert.equal(JSON.parse(s.text(3)).status, 'Success');
});

test('websocket exec with a TTY delivers resize messages to the backend', async () => {
  const url = server.getExec({ containerId: 'tty-ws', cmd: ['sh', '-c', 'sleep 0.3; echo done'], tty: true, stdin: false, stdout: true, stderr: false });
  const s = await wsConnect(url, ['v4.channel.k8s.io']);
  s.send(4, JSON.stringify({ Width: 132, Height: 43 }));
  await s.closed;
  assert.match(s.text(1), /done/);
  assert.deepEqual(backend.resizes.get('tty-ws'), [{ width: 132, height: 43 }]);
});

test('websocket answers with the protocol it negotiated, not the first one offered', async () => {
  const s = await wsConnect(exec(['true']), ['v99.channel.k8s.io', 'v4.channel.k8s.io']);
  assert.equal(s.protocol, 'v4.channel.k8s.io');
  await s.closed;
  assert.equal(JSON.parse(s.text(3)).status, 'Success');
});

test('websocket with only unsupported subprotocols is refused with 400', async () => {
  await assert.rejects(wsConnect(exec(['true']), ['v99.channel.k8s.io']), (e: unknown) => (e as { status?: number }).status === 400);
});

test('websocket port-forward sends the port prefix on both channels and pipes data', async () => {
  const url = server.getPortForward({ podSandboxId: 'pod1', port: [] }) + `?ports=${echoPort}`;
  const s = await wsConnect(url, ['v4.channel.k8s.io']);
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16LE(echoPort, 0);
  await waitFor(() => (s.channels.get(0)?.length ?? 0) >= 1 && (s.channels.get(1)?.length ?? 0) >= 1);
  assert.deepEqual(s.channels.get(0)?.[0], prefix);
  assert.deepEqual(s.channels.get(1)?.[0], prefix);
  s.send(0, 'ws echo');
  await waitFor(() => Buffer.concat(s.channels.get(0) ?? []).length >= 2 + 7);
  assert.equal(Buffer.concat((s.channels.get(0) ?? []).slice(1)).toString(), 'ws echo');
  s.ws.close();
  await s.closed;
});

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---------------- kubectl (a real Kubernetes client) ----------------
//
// kubectl talks to an API server, which proxies exec/port-forward to the node. A fake API
// server on loopback answers the pod lookups and forwards the upgrade request byte for byte to
// the URL our StreamingServer hands out, as the kubelet/API server chain would.

const kubectlVersion = ((): { text: string; minor: number } | undefined => {
  const r = spawnSync('kubectl', ['version', '--client', '-o', 'json'], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const v = (JSON.parse(r.stdout) as { clientVersion?: { gitVersion?: string } }).clientVersion?.gitVersion ?? '';
  const m = /^v1\.(\d+)\./.exec(v);
  return { text: v, minor: m ? Number(m[1]) : 0 };
})();
/**
 * Why a kubectl test cannot run here ('' when it can). The WebSocket transports came with
 * kubectl 1.29 (exec, KUBECTL_REMOTE_COMMAND_WEBSOCKETS) and 1.30 (port-forward,
 * KUBECTL_PORT_FORWARD_WEBSOCKETS); Debian 12's kubernetes-client, which .ci/run installs where
 * no kubectl is present, is 1.20: its runs cover SPDY, the byte traces cover the rest.
 */
function kubectlSkip(websocketSince?: number): string | false {
  if (!kubectlVersion) return 'kubectl not installed (apt-get install kubernetes-client; .ci/run does)';
  if (websocketSince !== undefined && kubectlVersion.minor < websocketSince)
    return `kubectl ${kubectlVersion.text} has no WebSocket transport for this (it came in 1.${websocketSince})`;
  return false;
}

interface FakeApiServer {
  url: string;
  /** Called with the Upgrade header of every upgrade request proxied. */
  onUpgrade: (upgrade: string) => void;
  kubeconfig: string;
  dir: string;
  close(): Promise<void>;
}

async function startFakeApiServer(): Promise<FakeApiServer> {
  const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const http = (await import('node:http')).default;
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p1', namespace: 'default', uid: 'u1' },
    spec: { containers: [{ name: 'c1', image: 'busybox' }] },
    status: { phase: 'Running' },
  };
  const routes: Record<string, unknown> = {
    '/version': { major: '1', minor: '32', gitVersion: 'v1.32.0' },
    '/api': { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1' }] },
    '/apis': { kind: 'APIGroupList', apiVersion: 'v1', groups: [] },
    '/api/v1': {
      kind: 'APIResourceList',
      groupVersion: 'v1',
      resources: [
        { name: 'pods', singularName: 'pod', namespaced: true, kind: 'Pod', verbs: ['get', 'list'], shortNames: ['po'] },
        { name: 'pods/exec', singularName: '', namespaced: true, kind: 'PodExecOptions', verbs: ['create', 'get'] },
        { name: 'pods/portforward', singularName: '', namespaced: true, kind: 'PodPortForwardOptions', verbs: ['create', 'get'] },
      ],
    },
    '/api/v1/namespaces/default/pods/p1': pod,
  };
  const api = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const body = routes[path];
    res.writeHead(body ? 200 : 404, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body ?? { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 }));
  });
  api.on('upgrade', (req, socket: Duplex, head: Buffer) => {
    fake.onUpgrade(String(req.headers.upgrade));
    const u = new URL(req.url ?? '/', 'http://x');
    const q = u.searchParams;
    let target: string;
    if (u.pathname.endsWith('/exec')) {
      target = server.getExec({
        containerId: q.get('container') ?? 'c1',
        cmd: q.getAll('command'),
        tty: q.get('tty') === 'true',
        stdin: q.get('stdin') === 'true',
        stdout: q.get('stdout') === 'true',
        stderr: q.get('stderr') === 'true',
      });
    } else if (u.pathname.endsWith('/portforward')) {
      target = server.getPortForward({ podSandboxId: 'p1', port: [] });
    } else {
      socket.destroy();
      return;
    }
    const t = new URL(target);
    const upstream = net.connect(Number(t.port), t.hostname, () => {
      const lines = [`${req.method} ${t.pathname}${u.search} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const k = req.rawHeaders[i] as string;
        lines.push(`${k}: ${k.toLowerCase() === 'host' ? t.host : req.rawHeaders[i + 1]}`);
      }
      upstream.write(lines.join('\r\n') + '\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
    socket.on('close', () => upstream.destroy());
    upstream.on('close', () => socket.destroy());
  });
  const sockets = new Set<net.Socket>();
  api.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => api.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(api.address() as net.AddressInfo).port}`;
  const dir = await mkdtemp(join(tmpdir(), 'berth-kubectl-'));
  const kubeconfig = join(dir, 'config');
  await writeFile(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster: { server: url } }],
      users: [{ name: 'u', user: {} }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'u', namespace: 'default' } }],
      'current-context': 'fake',
    }),
  );
  const fake: FakeApiServer = {
    url,
    kubeconfig,
    dir,
    onUpgrade: () => {},
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => api.close(() => r()));
      await rm(dir, { recursive: true, force: true });
    },
  };
  return fake;
}

function runKubectl(
  api: FakeApiServer,
  args: string[],
  env: Record<string, string>,
  input?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('kubectl', ['--kubeconfig', api.kubeconfig, '--cache-dir', `${api.dir}/cache`, ...args], {
      env: { ...process.env, ...env, HOME: api.dir },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

for (const [transport, env] of [
  ['SPDY', { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'false' }],
  ['WebSocket v5', { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'true' }],
] as const) {
  test(`kubectl exec over ${transport}: output, stdin and exit code 3`, { skip: kubectlSkip(transport === 'SPDY' ? undefined : 29) }, async () => {
    const api = await startFakeApiServer();
    let upgrades = '';
    api.onUpgrade = (h) => (upgrades += h.toLowerCase() + '\n');
    try {
      const r = await runKubectl(api, ['exec', 'p1', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3'], env);
      assert.equal(r.code, 3, r.stderr);
      assert.equal(r.stdout, 'out\n');
      assert.match(r.stderr, /^err$/m);
      const i = await runKubectl(api, ['exec', '-i', 'p1', '--', 'sh', '-c', 'cat; echo closed'], env, 'piped input\n');
      assert.equal(i.code, 0, i.stderr);
      assert.equal(i.stdout, 'piped input\nclosed\n');
      // kubectl falls back to SPDY when a WebSocket upgrade fails: check what it really used.
      const want = transport === 'SPDY' ? 'spdy/3.1' : 'websocket';
      assert.ok(
        upgrades.split('\n').filter(Boolean).length >= 2 &&
          upgrades
            .split('\n')
            .filter(Boolean)
            .every((u) => u === want),
        `every session upgraded to ${want}; saw:\n${upgrades}`,
      );
    } finally {
      await api.close();
    }
  });
}

for (const [transport, websockets] of [
  ['SPDY', 'false'],
  ['SPDY tunnelled in WebSocket', 'true'],
] as const) {
  test(`kubectl port-forward over ${transport} reaches a TCP echo server`, { skip: kubectlSkip(websockets === 'true' ? 30 : undefined) }, async () => {
    const api = await startFakeApiServer();
    let upgrades = '';
    api.onUpgrade = (h) => (upgrades += h + '\n');
    const child = spawn(
      'kubectl',
      ['--kubeconfig', api.kubeconfig, '--cache-dir', `${api.dir}/cache`, 'port-forward', '--address', '127.0.0.1', 'pod/p1', `:${echoPort}`],
      {
        env: { ...process.env, HOME: api.dir, KUBECTL_PORT_FORWARD_WEBSOCKETS: websockets },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    try {
      let out = '';
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const localPort = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`kubectl did not start forwarding: ${out}`)), 15_000);
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve(Number(m[1]));
          }
        });
      });
      for (const msg of ['first connection', 'second connection']) {
        const echoed = await new Promise<string>((resolve, reject) => {
          const s = net.connect(localPort, '127.0.0.1', () => s.write(msg));
          let got = '';
          s.on('data', (d: Buffer) => {
            got += d.toString();
            if (got.length >= msg.length) {
              s.end();
              resolve(got);
            }
          });
          s.on('error', reject);
        });
        assert.equal(echoed, msg);
      }
      // No fallback: the transport under test is the one kubectl used.
      assert.equal(upgrades.trim(), websockets === 'true' ? 'websocket' : 'SPDY/3.1');
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('close', r));
      await api.close();
    }
  });
}
