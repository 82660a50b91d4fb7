/**
 * The berth CLI as a person uses it: bin/berth as a child process against a real berthd
 * (registry, CNI, runc) from startCriEnv. Pod names are unique per test; cleanup removes all.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { repoRoot } from '../helpers/berthd.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';

let env: CriEnv;
let dir: string;
const children = new Set<ChildProcess>();
const BERTH = join(repoRoot(), 'bin', 'berth');

before(async () => {
  env = await startCriEnv();
  dir = mkdtempSync(join(tmpdir(), 'berth-cli-it-'));
});

after(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  try {
    await env?.cleanup();
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function berth(args: string[], input?: string): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BERTH, '--socket', env.berthd.socket, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
    else child.stdin?.end();
  });
}

async function ok(args: string[], input?: string): Promise<string> {
  const r = await berth(args, input);
  assert.equal(r.code, 0, `berth ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** A long-running berth (follow, port-forward, events) whose output we watch. */
function spawnBerth(args: string[]): { child: ChildProcess; out: () => string; waitFor: (re: RegExp) => Promise<RegExpMatchArray> } {
  const child = spawn(process.execPath, [BERTH, '--socket', env.berthd.socket, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return {
    child,
    out: () => out,
    waitFor: async (re) => {
      for (let i = 0; i < 300; i++) {
        const m = re.exec(out);
        if (m) return m;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`timed out waiting for ${re} in: ${out}`);
    },
  };
}

async function eventually<T>(f: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let i = 0; i < 100; i++) {
    const v = await f();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out: ${what}`);
}

test('run (flag form) then ps, pods, logs, exec, inspect, stop, rm, stopp, rmp', async () => {
  const id = (
    await ok([
      'run',
      '--name',
      'web',
      '--log-dir',
      join(dir, 'web'),
      '-e',
      'GREETING=hi',
      env.busybox.ref,
      'sh',
      '-c',
      'echo $GREETING; echo oops >&2; sleep 100',
    ])
  ).trim();
  assert.match(id, /^[0-9a-f]{64}$/);

  const ps = await ok(['ps']);
  assert.match(ps, /^CONTAINER\s+IMAGE\s+CREATED\s+STATE\s+NAME\s+ATTEMPT\s+POD ID$/m);
  assert.match(ps, new RegExp(`^${id.slice(0, 13)}\\s+\\S+\\s+.*Running\\s+web\\s+0\\s+[0-9a-f]{13}$`, 'm'));
  assert.ok((await ok(['ps', '-q'])).split('\n').includes(id));
  const psJson = JSON.parse(await ok(['ps', '-o', 'json'])) as { containers: { id: string; metadata: { name: string } }[] };
  assert.ok(psJson.containers.some((c) => c.id === id && c.metadata.name === 'web'));

  const pods = await ok(['pods', '--name', 'web']);
  assert.match(pods, /^[0-9a-f]{13}\s+.*\s+Ready\s+web\s+default\s+0\s+\S+$/m);
  const podsYaml = parseYaml(await ok(['pods', '-o', 'yaml'])) as { items: { metadata: { name: string } }[] };
  assert.ok(podsYaml.items.some((p) => p.metadata.name === 'web'));
  const podsJson = JSON.parse(await ok(['pods', '-o', 'json', '--namespace', 'default'])) as { items: { id: string; metadata: { name: string } }[] };
  const podId = podsJson.items.find((p) => p.metadata.name === 'web')!.id;
  assert.equal((await ok(['pods', '-q', '--state', 'notready'])).includes(podId), false);

  // Logs: stdout to stdout, stderr to stderr.
  const logs = await eventually(async () => {
    const r = await berth(['logs', 'web']);
    return r.stdout.includes('hi') && r.stderr.includes('oops') ? r : undefined;
  }, 'logs show both streams');
  assert.equal(logs.stdout, 'hi\n');
  assert.equal(logs.stderr, 'oops\n');
  const stamped = await berth(['logs', '--timestamps', '--tail', '2', id]);
  assert.match(stamped.stdout, /^\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:\d\d) hi\n$/);
  assert.match(stamped.stderr, /^\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:\d\d) oops\n$/);
  const last = await berth(['logs', '--tail', '1', id]);
  assert.equal((last.stdout + last.stderr).split('\n').filter(Boolean).length, 1, 'exactly one line');

  // Exec: one-shot and interactive, exit codes pass through.
  assert.equal(await ok(['exec', 'web', 'echo', 'x']), 'x\n');
  const failing = await berth(['exec', id.slice(0, 10), 'sh', '-c', 'echo out; exit 3']);
  assert.equal(failing.code, 3);
  assert.equal(failing.stdout, 'out\n');
  assert.equal(await ok(['exec', '-i', 'web', 'cat'], 'through stdin\n'), 'through stdin\n');
  const interactiveFail = await berth(['exec', '-i', 'web', 'sh', '-c', 'read l; echo got $l; exit 4'], 'line\n');
  assert.equal(interactiveFail.code, 4);
  assert.equal(interactiveFail.stdout, 'got line\n');

  const inspect = JSON.parse(await ok(['inspect', 'web'])) as { status: { id: string; state: number; logPath: string } };
  assert.equal(inspect.status.id, id);
  assert.ok(inspect.status.logPath.startsWith(join(dir, 'web')));
  const inspectp = JSON.parse(await ok(['inspectp', podId.slice(0, 12)])) as { status: { id: string; metadata: { name: string } } };
  assert.equal(inspectp.status.id, podId);

  assert.equal((await ok(['stop', '-t', '1', 'web'])).trim(), id);
  assert.match(await ok(['ps', '-a', '--name', 'web']), /Exited\s+web/);
  assert.equal((await ok(['ps', '--name', 'web'])).split('\n').filter(Boolean).length, 1, 'only the header: no running container');
  assert.equal((await ok(['rm', id])).trim(), id);
  assert.equal((await ok(['ps', '-a', '-q', '--id', id])).trim(), '');
  assert.match(await ok(['stopp', podId]), /Stopped sandbox/);
  assert.match(await ok(['rmp', podId]), /Removed sandbox/);
  assert.equal((await ok(['pods', '-q', '--id', podId])).trim(), '');
});

test('runp, create and start from crictl-style YAML and JSON files', async () => {
  const podYaml = join(dir, 'pod.yaml');
  writeFileSync(
    podYaml,
    ['metadata:', '  name: files', '  namespace: default', '  uid: files-uid-1', '  attempt: 0', `log_directory: ${join(dir, 'files')}`, 'linux: {}', ''].join(
      '\n',
    ),
  );
  const ctrJson = join(dir, 'ctr.json');
  writeFileSync(ctrJson, JSON.stringify({ metadata: { name: 'box' }, image: { image: env.busybox.ref }, command: ['sleep', '100'], log_path: 'box.log' }));
  const podId = (await ok(['runp', podYaml])).trim();
  assert.match(podId, /^[0-9a-f]{64}$/);
  const cid = (await ok(['create', 'files', ctrJson, podYaml])).trim();
  assert.match(await ok(['ps', '-a', '--pod', 'files']), /Created\s+box/);
  await ok(['start', cid]);
  assert.match(await ok(['ps', '--pod', podId]), /Running\s+box/);
  // rm without -f refuses a running container; rmp -f takes the pod and everything in it.
  const refused = await berth(['rm', cid]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /running: stop it first/);
  await ok(['rmp', '-f', podId]);
  assert.equal((await ok(['ps', '-a', '-q', '--id', cid])).trim(), '');

  const typo = join(dir, 'typo.yaml');
  writeFileSync(typo, 'metdata:\n  name: x\n');
  const bad = await berth(['runp', typo]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^berth: .*typo\.yaml.*metdata/);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
});

test('run (file form) and logs -f follows until the container exits', async () => {
  const pod = join(dir, 'pod2.json');
  writeFileSync(pod, JSON.stringify({ metadata: { name: 'follow', namespace: 'default', uid: 'follow-uid' }, logDirectory: join(dir, 'follow') }));
  const ctr = join(dir, 'ctr2.yaml');
  writeFileSync(
    ctr,
    `metadata:\n  name: ticker\nimage:\n  image: ${env.busybox.ref}\ncommand: [sh, -c, 'for i in 1 2 3; do echo tick $i; sleep 0.3; done']\nlogPath: ticker.log\n`,
  );
  const cid = (await ok(['run', ctr, pod])).trim();
  const f = spawnBerth(['logs', '-f', cid]);
  const code = await new Promise<number | null>((resolve) => f.child.once('exit', (c) => resolve(c)));
  assert.equal(code, 0);
  assert.equal(f.out(), 'tick 1\ntick 2\ntick 3\n');
  await ok(['rmp', '-f', 'follow']);
});

test('port-forward carries a local connection to a port inside the pod', async () => {
  await ok(['run', '--name', 'pf', '--log-dir', join(dir, 'pf'), env.busybox.ref, 'sh', '-c', 'while true; do echo pong | nc -l -p 8080; done']);
  const pf = spawnBerth(['port-forward', 'pf', ':8080']);
  const m = await pf.waitFor(/Forwarding from 127\.0\.0\.1:(\d+) -> 8080/);
  const port = Number(m[1]);
  const reply = await eventually(
    () =>
      new Promise<string | undefined>((resolve) => {
        const c = net.connect(port, '127.0.0.1');
        let got = '';
        c.on('data', (d: Buffer) => {
          got += d.toString();
          if (got.includes('\n')) c.destroy();
        });
        c.on('close', () => resolve(got.includes('pong') ? got : undefined));
        c.on('error', () => resolve(undefined));
        setTimeout(() => c.destroy(), 3000);
      }),
    'pong through port-forward',
  );
  assert.equal(reply, 'pong\n');
  pf.child.kill('SIGTERM');
  assert.equal(await new Promise((r) => pf.child.once('exit', (c) => r(c))), 0);
  await ok(['rmp', '-f', 'pf']);
});

test('run -i attaches to the new container: stdin in, output and exit code back', async () => {
  const r = await berth(['run', '-i', '--name', 'att', '--log-dir', join(dir, 'att'), env.busybox.ref, 'sh', '-c', 'read l; echo got $l; exit 5'], 'x\n');
  assert.equal(r.stdout, 'got x\n');
  assert.match(r.stderr, /pod [0-9a-f]{64}/);
  assert.equal(r.code, 5);
  await ok(['rmp', '-f', 'att']);
});

test('events streams one JSON line per container event', async () => {
  const ev = spawnBerth(['events', '-o', 'json']);
  // A subscription has no visible sign of its own: it is up once a probe container's event shows.
  for (let probe = 0; ; probe++) {
    assert.ok(probe < 10, `no event of 10 probe containers reached \`berth events\`: ${ev.out()}`);
    const pid = (await ok(['run', '--name', `ev-probe-${probe}`, '--log-dir', join(dir, 'ev-probe'), env.busybox.ref, 'true'])).trim();
    const deadline = Date.now() + 2000;
    while (!ev.out().includes(`"containerId":"${pid}"`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await ok(['rmp', '-f', `ev-probe-${probe}`]);
    if (ev.out().includes(`"containerId":"${pid}"`)) break;
  }
  const id = (await ok(['run', '--name', 'ev', '--log-dir', join(dir, 'ev'), env.busybox.ref, 'sleep', '100'])).trim();
  await ev.waitFor(new RegExp(`"containerId":"${id}".*"containerEventType":1|"containerEventType":1.*"containerId":"${id}"`));
  ev.child.kill('SIGINT');
  await new Promise((r) => ev.child.once('exit', r));
  const lines = ev
    .out()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { containerId: string });
  assert.ok(lines.some((l) => l.containerId === id));
  await ok(['rmp', '-f', 'ev']);
});

test('trace draws the pod startup as a waterfall; -o json lists the spans', async () => {
  await ok(['run', '--name', 'tr', '--log-dir', join(dir, 'tr'), env.busybox.ref, 'sleep', '100']);
  const text = await ok(['trace', '--width', '100', 'tr']);
  const lines = text.trimEnd().split('\n');
  assert.match(lines[0]!, /^total [\d.]+m?s, \d+ spans?/);
  assert.ok(lines.length >= 3, text);
  for (const l of lines.slice(2)) assert.match(l, /^[ ✗] \S.*\s\+[\d.]+m?s\s+[\d.]+m?s\s+\|[█! ]+\|/);
  const doc = JSON.parse(await ok(['trace', '-o', 'json', 'tr'])) as { spans: { name: string; durationNano: string }[] };
  assert.ok(doc.spans.length >= 1);
  assert.ok(doc.spans.every((sp) => sp.name !== '' && /^\d+$/.test(sp.durationNano)));
  await ok(['rmp', '-f', 'tr']);
});

test('stats shows a running container with its name', async () => {
  const id = (await ok(['run', '--name', 'st', '--log-dir', join(dir, 'st'), env.busybox.ref, 'sleep', '100'])).trim();
  const out = await ok(['stats', '--interval', '0.3', 'st']);
  assert.match(out, /^CONTAINER\s+NAME\s+CPU %\s+MEM\s+DISK\s+INODES$/m);
  assert.match(out, new RegExp(`^${id.slice(0, 13)}\\s+st\\s+[\\d.-]+\\s+\\S+`, 'm'));
  await ok(['rmp', '-f', 'st']);
});

test('info shows the conditions and every runtime handler with its probed features', async () => {
  const out = await ok(['info']);
  assert.match(out, /^RuntimeReady\s+true/m);
  assert.match(out, /^HANDLER\s+RECURSIVE_READ_ONLY\s+USER_NAMESPACES$/m);
  assert.match(out, /^\(default\)\s+true\s+(true|false)$/m);
  assert.match(out, /^berth\s+true\s+(true|false)$/m);
  const j = JSON.parse(await ok(['info', '-o', 'json'])) as { runtimeHandlers: Array<{ name: string }>; features: { supplementalGroupsPolicy: boolean } };
  assert.deepEqual(
    j.runtimeHandlers.map((h) => h.name),
    ['', 'berth'],
  );
  assert.equal(j.features.supplementalGroupsPolicy, true);
});

test('usage errors exit 2, daemon errors exit 1 with one readable line', async () => {
  const unknownFlag = await berth(['ps', '--bogus']);
  assert.equal(unknownFlag.code, 2);
  assert.match(unknownFlag.stderr, /unknown flag --bogus/);
  const help = await berth(['logs', '-h']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /berth logs/);
  // (stop/rm of an unknown id succeed: they are idempotent; status is not.)
  const missing = await berth(['inspect', 'no-such-container-anywhere']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^berth: NotFound: /);
  assert.equal(missing.stderr.trim().split('\n').length, 1);
  const badPort = await berth(['run', '--name', 'x', '-p', 'nope', env.busybox.ref]);
  assert.equal(badPort.code, 2);
  assert.match(badPort.stderr, /--port nope/);
});
