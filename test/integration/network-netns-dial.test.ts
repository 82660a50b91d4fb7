/**
 * Connections made inside a network namespace by berthd's worker thread (port-forward's data
 * path, src/network/netns-dial.ts), against a real namespace made for the test: a listener
 * that exists only in the namespace answers, IPv6 loopback works, a closed port is refused,
 * no process is started per connection, and every thread of this process is back in its own
 * namespace afterwards (the worker never keeps a pod's namespace alive).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsDialer } from '../../src/network/netns-dial.js';
import { isRoot, run } from '../helpers/netns.js';

const skip = !isRoot() ? 'needs root (unshare, setns)' : false;
const dialer = new NetnsDialer();
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  await dialer.close();
  for (const c of cleanups.reverse()) await c();
});

/** A fresh netns bound on a file in a temp dir, with lo up. */
async function makeNetns(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-dial-'));
  const path = join(dir, 'ns');
  await writeFile(path, '');
  const r = run('unshare', [`--net=${path}`, 'ip', 'link', 'set', 'lo', 'up']);
  assert.equal(r.code, 0, r.stderr);
  cleanups.push(async () => {
    run('umount', ['--lazy', path]);
    await rm(dir, { recursive: true, force: true });
  });
  return path;
}

/** A server inside the netns answering every connection with `reply` (IPv4 and IPv6 loopback). */
async function serveIn(ns: string, host: string, port: number, reply: string): Promise<ChildProcess> {
  const code = `require('net').createServer(c=>c.end(${JSON.stringify(reply)})).listen(${port},${JSON.stringify(host)},()=>console.log('L'));process.stdin.on('end',()=>process.exit(0));process.stdin.resume();`;
  const child = spawn('nsenter', [`--net=${ns}`, process.execPath, '-e', code], { stdio: ['pipe', 'pipe', 'inherit'] });
  cleanups.push(() => void child.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`server exited ${c}`)));
  });
  return child;
}

async function readAll(ns: string, host: string, port: number): Promise<string> {
  const s = await dialer.connect(ns, host, port);
  let got = '';
  s.on('data', (d: Buffer) => (got += d.toString()));
  s.once('end', () => s.end());
  await new Promise<void>((r) => s.once('close', () => r()));
  return got;
}

const children = (): string[] =>
  readdirSync('/proc/self/task').flatMap((t) => readFileSync(`/proc/self/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean));
const threadNamespaces = (): Set<string> => new Set(readdirSync('/proc/self/task').map((t) => readlinkSync(`/proc/self/task/${t}/ns/net`)));

test('a socket made by the worker thread connects inside the namespace, over IPv4 and IPv6 loopback', { skip }, async () => {
  const ns = await makeNetns();
  await serveIn(ns, '127.0.0.1', 8080, 'v4 from inside');
  await serveIn(ns, '::1', 8081, 'v6 from inside');
  assert.equal(await readAll(ns, '127.0.0.1', 8080), 'v4 from inside');
  assert.equal(await readAll(ns, '::1', 8081), 'v6 from inside');
  // Nothing listens on 8082 in there: refused, as a user's connect would be.
  await assert.rejects(dialer.connect(ns, '127.0.0.1', 8082), (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED');
  // A path that is not a namespace is refused with the reason.
  await assert.rejects(dialer.connect('/etc/hostname', '127.0.0.1', 8080), /setns \/etc\/hostname: errno 22/);
});

test("200 connections start no process, and every thread stays in berthd's own namespace", { skip }, async () => {
  const ns = await makeNetns();
  await serveIn(ns, '127.0.0.1', 9090, 'x');
  const home = readlinkSync('/proc/self/ns/net');
  const before = new Set(children());
  const conns = await Promise.all(Array.from({ length: 200 }, () => dialer.connect(ns, '127.0.0.1', 9090)));
  assert.ok(dialer.running, 'the worker thread serves the connections');
  assert.deepEqual(
    children().filter((c) => !before.has(c)),
    [],
    'no process started for any connection',
  );
  assert.deepEqual([...threadNamespaces()], [home], 'every thread is in the host namespace');
  for (const c of conns) c.destroy();
  // The pod's namespace is not the host's: the same port on the host's loopback is not served.
  assert.notEqual(readlinkSync(`/proc/${(await serveIn(ns, '127.0.0.1', 9091, 'y')).pid}/ns/net`), home);
});
