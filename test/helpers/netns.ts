/**
 * Helpers for network tests: unique names and pod subnets inside 198.18.0.0/15, running
 * commands inside a netns, a tiny TCP echo server in a netns, and cleanup of the iptables NAT
 * rules and chains that portmap created for a test network (found by the network name that
 * portmap writes into its rule comments).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export function uniqueTag(): string {
  return randomBytes(3).toString('hex');
}

/** A random /24 inside 198.18.0.0/15 (the benchmarking range: never routed anywhere real). */
export function testSubnet(): { subnet: string; prefix: string; gateway: string } {
  const second = 18 + randomInt(2);
  const third = randomInt(256);
  const prefix = `198.${second}.${third}`;
  return { subnet: `${prefix}.0/24`, prefix, gateway: `${prefix}.1` };
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export function run(cmd: string, args: string[], timeoutMs = 10_000): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

export function inNetns(netnsPath: string, cmd: string, args: string[], timeoutMs = 10_000): { code: number | null; stdout: string; stderr: string } {
  return run('nsenter', [`--net=${netnsPath}`, cmd, ...args], timeoutMs);
}

export function linkExists(name: string): boolean {
  return run('ip', ['link', 'show', 'dev', name]).code === 0;
}

export function deleteLink(name: string): void {
  if (linkExists(name)) run('ip', ['link', 'del', 'dev', name]);
}

/** Splits one `iptables -S` line into argv (double quotes with backslash escapes). */
export function splitRule(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inQuote = false;
  let has = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (inQuote) {
      if (c === '\\' && i + 1 < line.length) cur += line[++i];
      else if (c === '"') inQuote = false;
      else cur += c;
    } else if (c === '"') {
      inQuote = true;
      has = true;
    } else if (c === ' ') {
      if (has || cur) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
    }
  }
  if (has || cur) out.push(cur);
  return out;
}

/** `iptables -t nat -S` lines that mention `token`. */
export function natRulesMentioning(token: string): string[] {
  return run('iptables', ['-w', '-t', 'nat', '-S'])
    .stdout.split('\n')
    .filter((l) => l.includes(token));
}

/** Removes every NAT rule mentioning `token` and the per-container chains they jump to. */
export function cleanupNat(token: string): void {
  const chains = new Set<string>();
  for (const line of natRulesMentioning(token)) {
    if (!line.startsWith('-A ')) continue;
    const argv = splitRule(line);
    const j = argv.indexOf('-j');
    const target = j >= 0 ? argv[j + 1] : undefined;
    if (target && (target.startsWith('CNI-DN-') || target.startsWith('CNI-SN-'))) chains.add(target);
    run('iptables', ['-w', '-t', 'nat', '-D', ...argv.slice(1)]);
  }
  for (const c of chains) {
    run('iptables', ['-w', '-t', 'nat', '-F', c]);
    run('iptables', ['-w', '-t', 'nat', '-X', c]);
  }
}

/** Chains named `CNI-DN-…` that exist right now. */
export function dnatChains(): string[] {
  return run('iptables', ['-w', '-t', 'nat', '-S'])
    .stdout.split('\n')
    .filter((l) => l.startsWith('-N CNI-DN-'))
    .map((l) => l.slice(3));
}

/**
 * Starts a TCP server inside the netns that answers every connection with `reply` and closes.
 * Resolves once it listens. The caller kills it (child.kill()).
 */
export async function startTcpServer(netnsPath: string, host: string, port: number, reply: string): Promise<ChildProcess> {
  const code =
    `const s=require('net').createServer(c=>{c.end(${JSON.stringify(reply)})});` +
    `s.listen(${port},${JSON.stringify(host)},()=>console.log('listening'));` +
    `setTimeout(()=>process.exit(0),60000).unref();process.stdin.on('end',()=>process.exit(0));process.stdin.resume();`;
  const child = spawn('nsenter', [`--net=${netnsPath}`, process.execPath, '-e', code], { stdio: ['pipe', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error(`tcp server did not start: ${err}`)), 10_000);
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tcp server exited ${code}: ${err}`));
    });
  });
  return child;
}

/** Connects to host:port, returns what the server sent before closing. */
export async function tcpRead(host: string, port: number, timeoutMs = 3000): Promise<string> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    let data = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer from ${host}:${port} in ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('data', (d) => (data += d.toString()));
    sock.on('end', () => {
      clearTimeout(timer);
      resolve(data);
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** Like tcpRead, but the client runs inside the netns (pod-to-pod traffic). */
export function tcpReadFromNetns(netnsPath: string, host: string, port: number, timeoutMs = 3000): { code: number | null; stdout: string; stderr: string } {
  const code =
    `const s=require('net').connect({host:${JSON.stringify(host)},port:${port}});let d='';` +
    `s.on('data',x=>d+=x);s.on('end',()=>{process.stdout.write(d);process.exit(0)});` +
    `s.on('error',e=>{console.error(e.message);process.exit(1)});setTimeout(()=>{console.error('timeout');process.exit(2)},${timeoutMs});`;
  return inNetns(netnsPath, process.execPath, ['-e', code], timeoutMs + 5000);
}

const SHARED_PORTMAP_CHAINS = ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-SETMARK', 'CNI-HOSTPORT-MASQ'];

export function natChainExists(chain: string): boolean {
  return run('iptables', ['-w', '-t', 'nat', '-S', chain]).code === 0;
}

/**
 * Removes portmap's shared top-level chains (and the jumps to them) when they are empty.
 * Call only if they did not exist before the test: another user of portmap may own them.
 */
export function removeSharedPortmapChains(): void {
  const dnat = run('iptables', ['-w', '-t', 'nat', '-S', 'CNI-HOSTPORT-DNAT']);
  if (dnat.code !== 0) return;
  if (dnat.stdout.split('\n').some((l) => l.startsWith('-A '))) return; // still in use
  const all = run('iptables', ['-w', '-t', 'nat', '-S']).stdout.split('\n');
  for (const line of all) {
    if (!line.startsWith('-A ')) continue;
    const argv = splitRule(line);
    const j = argv.indexOf('-j');
    const target = j >= 0 ? argv[j + 1] : undefined;
    if (target && SHARED_PORTMAP_CHAINS.includes(target) && !SHARED_PORTMAP_CHAINS.includes(argv[1] ?? '')) {
      run('iptables', ['-w', '-t', 'nat', '-D', ...argv.slice(1)]);
    }
  }
  for (const c of SHARED_PORTMAP_CHAINS) run('iptables', ['-w', '-t', 'nat', '-F', c]);
  for (const c of SHARED_PORTMAP_CHAINS) run('iptables', ['-w', '-t', 'nat', '-X', c]);
}

// ---------------------------------------------------------------------------------------------
// A fake CNI plugin for unit tests: a small Node script installed under any plugin name in a
// temp bin dir. It appends each call (plugin name, CNI_* env, parsed stdin) to calls.jsonl in
// its own dir, and behaves as the `fake` object in its own plugin config says:
//   { failOn?: "ADD"|"DEL"|..., error?: {code,msg,details}, raw?: string (stdout), exit?: number,
//     sleepMs?: number, result?: object }
// By default ADD echoes prevResult, or (first in chain) returns eth0 with 198.18.0.5/24.

const SCRIPT = `
const fs = require('fs'); const path = require('path');
const name = path.basename(process.argv[1]); const dir = path.dirname(process.argv[1]);
let input = ''; process.stdin.setEncoding('utf8');
process.stdin.on('data', d => input += d);
process.stdin.on('end', () => {
  const conf = input ? JSON.parse(input) : {};
  const env = {}; for (const [k, v] of Object.entries(process.env)) if (k.startsWith('CNI_') || k === 'FAKE_MARK') env[k] = v;
  fs.appendFileSync(path.join(dir, 'calls.jsonl'), JSON.stringify({ plugin: name, env, conf }) + '\\n');
  const fake = conf.fake || {}; const cmd = process.env.CNI_COMMAND;
  const finish = () => {
    if (fake.failOn === cmd || (fake.failOn === undefined && (fake.error || fake.raw !== undefined || fake.exit))) {
      if (fake.error) process.stdout.write(JSON.stringify({ cniVersion: conf.cniVersion, ...fake.error }));
      if (fake.raw !== undefined) process.stdout.write(fake.raw);
      process.stderr.write('fake stderr from ' + name);
      process.exit(fake.exit ?? 1);
    }
    if (cmd === 'ADD') {
      const res = fake.result || conf.prevResult || { cniVersion: conf.cniVersion,
        interfaces: [{ name: 'veth0' }, { name: process.env.CNI_IFNAME, sandbox: process.env.CNI_NETNS }],
        ips: [{ address: '198.18.0.5/24', gateway: '198.18.0.1', interface: 1 }], routes: [{ dst: '0.0.0.0/0' }], dns: {} };
      process.stdout.write(JSON.stringify(res));
    } else if (cmd === 'VERSION') {
      process.stdout.write(JSON.stringify({ cniVersion: '1.1.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] }));
    }
    process.exit(0);
  };
  if (fake.sleepMs) setTimeout(finish, fake.sleepMs); else finish();
});
`;

export async function installFakePlugin(binDir: string, name: string): Promise<void> {
  const p = join(binDir, name);
  await writeFile(p, `#!${process.execPath}\n${SCRIPT}`);
  await chmod(p, 0o755);
}

export interface FakeCall {
  plugin: string;
  env: Record<string, string>;
  conf: Record<string, unknown>;
}

export async function readCalls(binDir: string): Promise<FakeCall[]> {
  try {
    const text = await readFile(join(binDir, 'calls.jsonl'), 'utf8');
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as FakeCall);
  } catch {
    return [];
  }
}

export async function clearCalls(binDir: string): Promise<void> {
  await writeFile(join(binDir, 'calls.jsonl'), '');
}
