/**
 * Shared plumbing for the CRI runtime benchmarks (pod lifecycle latency, memory per pod):
 * starting berthd or Debian's containerd with a CNI config of our own (bridge + host-local on a
 * 198.18.x.0/24, masquerade off, unique bridge per runtime), pre-pulling the fixtures, pod and
 * container configs, process discovery + PSS, small statistics and BENCHMARKS.md sections.
 */
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { connectCri, type CriClient } from '../src/cri/server/client.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { NamespaceMode, type ContainerConfigSchema, type PodSandboxConfigSchema } from '../src/api/cri/runtime/v1/api_pb.js';

export type PodConfigInit = MessageInitShape<typeof PodSandboxConfigSchema>;
export type ContainerConfigInit = MessageInitShape<typeof ContainerConfigSchema>;
import { startRegistry, type TestRegistry } from '../test/helpers/registry.js';
import { pushAllFixtures, type PushedFixture } from '../test/helpers/images.js';
import { cleanupNat, deleteLink, testSubnet, uniqueTag } from '../test/helpers/netns.js';
import { containerdConfig, hostsToml } from './containerd.js';
import { berthdConfig } from './berthd.js';
import { berthdArgv, cleanupDir, stopProcess, tail, waitForCri, type DaemonHandle } from './daemon-util.js';

export type Impl = 'berth' | 'containerd';

// ------------------------------------------------------------------ statistics

/** Nearest-rank percentile (p in 0..100) of the samples; NaN when there are none. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length, Math.max(1, rank)) - 1] as number;
}

/** a / b, or undefined when either is missing or b is not positive. */
export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b <= 0) return undefined;
  return a / b;
}

export const fmtMs = (n: number | undefined, digits = 1): string => (n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(digits));
export const fmtRatio = (n: number | undefined): string => (n === undefined ? 'n/a' : `${n.toFixed(2)}×`);

// ------------------------------------------------------------------ machine

export interface MachineInfo {
  nproc: number;
  memGiB: number;
  kernel: string;
  /** 1-minute load average when sampled. */
  load1: number;
}

export function machineInfo(): MachineInfo {
  return { nproc: cpus().length, memGiB: totalmem() / 1024 ** 3, kernel: release(), load1: loadavg()[0] ?? 0 };
}

export function describeMachine(m: MachineInfo, loadAtEnd?: number): string {
  const load = loadAtEnd === undefined ? m.load1.toFixed(2) : `${m.load1.toFixed(2)} at start, ${loadAtEnd.toFixed(2)} at end`;
  return `${m.nproc} CPUs, ${m.memGiB.toFixed(1)} GiB, kernel ${m.kernel}, load average (1 min) ${load}`;
}

// ------------------------------------------------------------------ memory (PSS)

export interface SmapsRollup {
  /** Proportional set size: private pages + each shared page divided by its sharers. */
  pssKiB: number;
  pssAnonKiB: number;
  pssFileKiB: number;
  rssKiB: number;
}

/** Parses /proc/PID/smaps_rollup text (values in kB); missing fields read as 0. */
export function parseSmapsRollup(text: string): SmapsRollup {
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };
  return { pssKiB: field('Pss'), pssAnonKiB: field('Pss_Anon'), pssFileKiB: field('Pss_File'), rssKiB: field('Rss') };
}

/** PSS of one process, or undefined when it is gone (or unreadable). */
export function pssOf(pid: number): SmapsRollup | undefined {
  try {
    return parseSmapsRollup(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** argv of a process (NUL-separated cmdline), or undefined when it is gone. */
function cmdline(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .filter((s) => s !== '');
  } catch {
    return undefined;
  }
}

/**
 * Shim processes of one daemon: processes (other than the daemon) whose argv names a shim
 * binary and mentions the daemon's private dir (its socket is passed as `-address`). Both
 * containerd-shim-runc-v2 and berth-shim (a Node process: the script is its first argument
 * after node's own flags) match.
 */
export function findShimPids(daemonDir: string, daemonPid: number): number[] {
  const out: number[] = [];
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    const pid = Number(ent);
    if (pid === daemonPid || pid === process.pid) continue;
    const argv = cmdline(pid);
    if (!argv || !argv.some((a) => a.includes(daemonDir))) continue;
    const script = argv.slice(1).find((a) => !a.startsWith('-')) ?? '';
    if ([argv[0] ?? '', script].some((a) => /(^|\/)(containerd-shim-[a-z0-9]+-v\d+|berth-shim)$/.test(a))) out.push(pid);
  }
  return out.sort((a, b) => a - b);
}

/** conmon monitors of one daemon (their argv names the daemon's private dir). */
export function findMonitorPids(daemonDir: string): number[] {
  const out: number[] = [];
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    const argv = cmdline(Number(ent));
    if (argv && /(^|\/)conmon$/.test(argv[0] ?? '') && argv.some((a) => a.includes(daemonDir))) out.push(Number(ent));
  }
  return out.sort((a, b) => a - b);
}

/** Kills (SIGKILL, by pid) leftover processes whose argv names `dir`, e.g. shims of a stopped daemon. */
export function killStragglers(dir: string): void {
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent) || Number(ent) === process.pid) continue;
    const argv = cmdline(Number(ent));
    if (argv?.some((a) => a.includes(dir))) {
      try {
        process.kill(Number(ent), 'SIGKILL');
      } catch {
        // raced with its exit
      }
    }
  }
}

// ------------------------------------------------------------------ fixtures

export interface Fixtures {
  registry: TestRegistry;
  busybox: PushedFixture;
  pause: PushedFixture;
}

/** A loopback registry holding the busybox and pause fixtures. */
export async function startFixtures(): Promise<Fixtures> {
  const registry = await startRegistry();
  try {
    const fx = await pushAllFixtures(registry, { names: ['busybox', 'pause'] });
    return { registry, busybox: fx.get('busybox')!, pause: fx.get('pause')! };
  } catch (err) {
    await registry.stop();
    throw err;
  }
}

// ------------------------------------------------------------------ CNI

export interface BenchNet {
  bridge: string;
  network: string;
  subnet: string;
}

/**
 * Writes a conflist (bridge + host-local with its data dir under `dataDir`, loopback) into
 * `confDir`. Masquerade is off: pods never reach anything outside this host.
 */
export function writeCniConf(confDir: string, dataDir: string, label: string): BenchNet {
  const tag = uniqueTag();
  const { subnet, gateway } = testSubnet();
  const bridge = `bn${label.slice(0, 2)}${tag}`.slice(0, 15);
  const network = `berth-bench-${label}-${tag}`;
  mkdirSync(confDir, { recursive: true });
  writeFileSync(
    join(confDir, '10-bench.conflist'),
    JSON.stringify({
      cniVersion: '1.0.0',
      name: network,
      plugins: [
        {
          type: 'bridge',
          bridge,
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: { type: 'host-local', dataDir, ranges: [[{ subnet, gateway }]], routes: [{ dst: '0.0.0.0/0' }] },
        },
        { type: 'loopback' },
      ],
    }),
  );
  return { bridge, network, subnet };
}

export function cleanupNet(net: BenchNet): void {
  deleteLink(net.bridge);
  cleanupNat(net.network);
}

// ------------------------------------------------------------------ runtimes

/**
 * bench/containerd.ts's config plus what running pods needs here: restrict_oom_score_adj (this
 * machine cannot lower oom_score_adj; without it runc fails the pause container) and a runc
 * root inside the temp dir (the default /run/containerd/runc is shared with any other
 * containerd on the host).
 */
export function benchContainerdConfig(dir: string, registryHost: string, runcBinary?: string): string {
  const base = containerdConfig(dir, registryHost);
  const cri = '[plugins."io.containerd.grpc.v1.cri"]\n';
  const snap = '    snapshotter = "overlayfs"\n';
  if (!base.includes(cri) || !base.includes(snap)) throw new Error('bench/containerd.ts config changed shape: update benchContainerdConfig');
  const runtimes = `${snap}    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = ${JSON.stringify(join(dir, 'runc'))}
${runcBinary ? `        BinaryName = ${JSON.stringify(runcBinary)}\n` : ''}`;
  return base.replace(cri, `${cri}  restrict_oom_score_adj = true\n`).replace(snap, runtimes);
}

/** Cgroup hierarchy roots (v1 controllers and the unified v2 mount). */
function cgroupRoots(): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (dash > 0 && (f[dash + 1] === 'cgroup' || f[dash + 1] === 'cgroup2') && f[4]) out.push(f[4]);
  }
  return out;
}

/** Removes the (by now empty) cgroup directories named `name` at the top of every hierarchy. */
export function removeCgroupParent(name: string): void {
  const rmTree = (d: string): void => {
    let kids: string[] = [];
    try {
      kids = readdirSync(d, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => join(d, e.name));
    } catch {
      return;
    }
    for (const k of kids) rmTree(k);
    try {
      rmdirSync(d);
    } catch {
      // still has tasks, or already gone
    }
  };
  for (const r of cgroupRoots()) rmTree(join(r, name));
}

/** A cgroup parent unique to this bench process, so its pods never mix with anyone else's. */
export const BENCH_CGROUP_PARENT = `berth-bench-${uniqueTag()}`;

export interface BenchRuntime {
  impl: Impl;
  /** Human label (e.g. "berth (shim per pod)"). */
  label: string;
  daemon: DaemonHandle;
  cri: CriClient;
  net: BenchNet;
  /** Stops the daemon, kills leftover shims, removes bridge, NAT rules and the temp dir. */
  stop(): Promise<void>;
}

export interface StartRuntimeOptions {
  registryHost: string;
  repoRoot: string;
  label?: string;
  /** Extra TOML appended to berthd's config (e.g. `[shim]\ngroup = "node"`). */
  berthExtraToml?: string;
  /** Top-level keys put before the first table of berthd's config (e.g. `userns_rootfs = "copy"`). */
  berthTopToml?: string;
  /**
   * Make the temp dir searchable by others (0711, like /run): pods in a user namespace must
   * reach their bundles below it (berthd refuses them otherwise).
   */
  traversable?: boolean;
  /**
   * A cgroup v1 cpuacct directory (made by the caller) the daemon starts in: it and every
   * process it starts (shims, monitors, runc, CNI plugins) are charged there, while container
   * processes move to their own cgroups.
   */
  cpuacctCgroup?: string;
  /** Extra environment of the daemon (inherited by what it starts, e.g. BERTH_CONMON). */
  env?: Record<string, string>;
  /** The OCI runtime binary both runtimes run instead of runc on PATH (e.g. a wrapper). */
  runcBinary?: string;
}

/**
 * Starts a private daemon of the given kind with its own root/state/socket in a temp dir and
 * the bench CNI config, and waits until CRI answers and reports NetworkReady.
 */
export async function startRuntime(impl: Impl, o: StartRuntimeOptions): Promise<BenchRuntime> {
  const dir = mkdtempSync(join(tmpdir(), `bench-${impl}-`));
  if (o.traversable) chmodSync(dir, 0o711);
  const confDir = join(dir, 'cni');
  const net = writeCniConf(confDir, join(dir, 'ipam'), impl === 'berth' ? 'b' : 'c');
  let configFile: string;
  let argv: string[];
  let socket: string;
  if (impl === 'containerd') {
    mkdirSync(join(dir, 'certs.d', o.registryHost), { recursive: true });
    writeFileSync(join(dir, 'certs.d', o.registryHost, 'hosts.toml'), hostsToml(o.registryHost));
    configFile = join(dir, 'config.toml');
    writeFileSync(configFile, benchContainerdConfig(dir, o.registryHost, o.runcBinary));
    argv = ['containerd', '--config', configFile];
    socket = join(dir, 'containerd.sock');
  } else {
    configFile = join(dir, 'berthd.toml');
    // berthd's own default log level is info; the bench adds nothing that logs per request.
    const runtime = o.runcBinary ? `\n[runtimes.berth]\nbinary = ${JSON.stringify(o.runcBinary)}\n` : '';
    writeFileSync(configFile, `${o.berthTopToml ?? ''}\n${berthdConfig(dir, o.registryHost)}\n${o.berthExtraToml ?? ''}\n${runtime}`);
    // BENCH_BERTHD_NODE_FLAGS profiles berthd (see berthdArgv).
    argv = berthdArgv(join(o.repoRoot, 'bin', 'berthd'), ['--config', configFile]);
    socket = join(dir, 'berth.sock');
  }
  if (o.cpuacctCgroup) {
    // The shell joins the cgroup and execs the daemon (same pid): nothing runs outside it.
    argv = ['/bin/sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', o.cpuacctCgroup, ...argv];
  }
  const logFile = join(dir, `${impl}.log`);
  const fd = openSync(logFile, 'a');
  // Its own process group: a Ctrl-C at the terminal reaches the bench only, whose interrupt
  // handler (onInterrupt) then stops pods and daemons in order instead of orphaning them.
  const child = spawn(argv[0] as string, argv.slice(1), {
    stdio: ['ignore', fd, fd],
    cwd: impl === 'berth' ? o.repoRoot : dir,
    detached: true,
    env: o.env ? { ...process.env, ...o.env } : process.env,
  });
  closeSync(fd);
  child.once('error', () => undefined);
  let cri: CriClient | undefined;
  const stop = async (): Promise<void> => {
    cri?.close();
    await stopProcess(child);
    killStragglers(dir);
    // Empty cgroups only: a runtime still running pods keeps its own.
    removeCgroupParent(BENCH_CGROUP_PARENT);
    cleanupNet(net);
    cleanupDir(dir);
  };
  try {
    await waitForCri(socket, child, logFile);
    cri = connectCri(socket);
    await waitNetworkReady(cri, logFile);
  } catch (err) {
    await stop();
    throw err;
  }
  const daemon: DaemonHandle = { name: impl, socket, pid: child.pid ?? 0, dir, logFile, stop };
  return { impl, label: o.label ?? impl, daemon, cri, net, stop };
}

async function waitNetworkReady(cri: CriClient, logFile: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const st = await cri.runtime.status({}, { timeoutMs: 5000 });
      const netCond = st.status?.conditions.find((c) => c.type === 'NetworkReady');
      if (netCond?.status) return;
      last = `NetworkReady false: ${netCond?.reason ?? ''} ${netCond?.message ?? ''}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`network not ready within ${timeoutMs} ms (${last}):\n${tail(logFile)}`);
}

/** Pulls the images (not part of any timing). */
export async function prePull(cri: CriClient, refs: string[]): Promise<void> {
  for (const ref of refs) await cri.image.pullImage({ image: { image: ref } }, { timeoutMs: 120_000 });
}

// ------------------------------------------------------------------ pod / container configs

/**
 * What the kubelet sends for a pod without hostNetwork/shareProcessNamespace: each container
 * gets its own pid namespace (the proto default, 0, would mean POD: one shared pid namespace).
 */
const KUBELET_NAMESPACES = { network: NamespaceMode.POD, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD };

/** The container process: exits at once on SIGTERM, so StopContainer never waits out its timeout. */
export const SLEEP_COMMAND = ['sh', '-c', 'trap "exit 0" TERM INT; sleep 3600 & wait'];

/** The CRI's default pod: every namespace shared in the pod, pid too (berth then runs a pause). */
const SHARED_PID_NAMESPACES = { network: NamespaceMode.POD, pid: NamespaceMode.POD, ipc: NamespaceMode.POD };

export function podConfig(name: string, logDir: string, o: { sharedPid?: boolean } = {}): PodConfigInit {
  mkdirSync(logDir, { recursive: true });
  const namespaceOptions = o.sharedPid ? SHARED_PID_NAMESPACES : KUBELET_NAMESPACES;
  return {
    metadata: { name, uid: `uid-${name}`, namespace: 'bench', attempt: 0 },
    hostname: name.slice(0, 63),
    logDirectory: logDir,
    labels: { bench: 'berth' },
    linux: { cgroupParent: `/${BENCH_CGROUP_PARENT}`, securityContext: { namespaceOptions } },
  };
}

export function sleepContainerConfig(image: string, o: { sharedPid?: boolean; name?: string } = {}): ContainerConfigInit {
  const name = o.name ?? 'sleep';
  return {
    metadata: { name, attempt: 0 },
    image: { image },
    command: SLEEP_COMMAND,
    logPath: `${name}.log`,
    linux: { securityContext: { namespaceOptions: o.sharedPid ? SHARED_PID_NAMESPACES : KUBELET_NAMESPACES } },
  };
}

/** Best-effort removal of every pod the runtime lists (used after failures and at the end). */
export async function removeAllPods(cri: CriClient): Promise<void> {
  let pods: { id: string }[] = [];
  try {
    pods = (await cri.runtime.listPodSandbox({}, { timeoutMs: 30_000 })).items;
  } catch {
    return;
  }
  for (const p of pods) {
    await cri.runtime.stopPodSandbox({ podSandboxId: p.id }, { timeoutMs: 60_000 }).catch(() => undefined);
    await cri.runtime.removePodSandbox({ podSandboxId: p.id }, { timeoutMs: 60_000 }).catch(() => undefined);
  }
}

/** True once berth's pod RPCs exist (other helpers are still writing them). */
export function berthPodRpcsPresent(repoRoot: string): boolean {
  const f = join(repoRoot, 'src', 'cri', 'server/handlers-sandbox.ts');
  return existsSync(f) && readFileSync(f, 'utf8').includes('runPodSandbox');
}

// ------------------------------------------------------------------ BENCHMARKS.md sections

/** Rows of the last markdown table in `section` (header and separator dropped). */
export function lastTableRows(section: string): string[] {
  const lines = section.split('\n');
  let end = lines.length - 1;
  while (end >= 0 && !(lines[end] ?? '').startsWith('|')) end--;
  let start = end;
  while (start > 0 && (lines[start - 1] ?? '').startsWith('|')) start--;
  return end < 0 ? [] : lines.slice(start + 2, end + 1);
}

/**
 * Replaces section `id` of BENCHMARKS.md with `body` followed by a history table whose rows
 * are the previous history rows plus `historyRow` (at most `keep`, newest last).
 */
export function writeSection(root: string, id: string, body: string, historyHead: string, historyRow: string, keep = 20): string {
  const file = join(root, 'BENCHMARKS.md');
  let text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
  const start = `<!-- bench:${id}:start -->`;
  const end = `<!-- bench:${id}:end -->`;
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  const old = a >= 0 && b > a ? text.slice(a + start.length, b) : '';
  // Rows are carried over only under the same columns (a bench that changed what it measures
  // starts a new history).
  const oldHistory = old.includes('### History') ? old.slice(old.indexOf('### History')) : '';
  const sameColumns = oldHistory.includes(historyHead.trim().split('\n')[0] ?? '\u0000');
  const history = [...(sameColumns ? lastTableRows(oldHistory) : []), historyRow].slice(-keep);
  const section = `${start}\n${body.trim()}\n\n### History\n\n${historyHead.trim()}\n${history.join('\n')}\n${end}`;
  text = a >= 0 && b > a ? text.slice(0, a) + section + text.slice(b + end.length) : `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(file, text);
  return file;
}

// ------------------------------------------------------------------ CPU accounting (cgroup v1 cpuacct)

/** The cgroup v1 cpuacct mount point, or undefined on a host without one. */
export function cpuacctRoot(): string | undefined {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (dash > 0 && f[dash + 1] === 'cgroup' && (f[dash + 3] ?? '').split(',').includes('cpuacct') && f[4]) return f[4];
  }
  return undefined;
}

/** Creates `<cpuacct root>/<name>` and returns its path. */
export function makeCpuacctCgroup(name: string): string {
  const r = cpuacctRoot();
  if (!r) throw new Error('no cgroup v1 cpuacct hierarchy on this host');
  const d = join(r, name);
  mkdirSync(d, { recursive: true });
  return d;
}

/** CPU seconds used so far by every process that ran in the cgroup (cpuacct.usage, ns). */
export function cgroupCpuSeconds(dir: string): number {
  return Number(readFileSync(join(dir, 'cpuacct.usage'), 'utf8').trim()) / 1e9;
}

/** SIGKILLs what is left in the cgroup, then removes it once it is empty. */
export async function removeCpuacctCgroup(dir: string): Promise<void> {
  try {
    for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone
      }
    }
  } catch {
    return;
  }
  for (let i = 0; i < 50; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch {
      // killed processes take a moment to leave the cgroup
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

export const nowUtc = (): string => new Date().toISOString().slice(0, 16).replace('T', ' ');

// ------------------------------------------------------------------ interrupts

/**
 * SIGKILLs every process in the cgroup directories named `name` (and below) at the top of
 * every hierarchy, then removes the directories: what a bench's pods and daemons leave when a
 * run is cut short (e.g. containerd's `runc init` of a container being created).
 */
export async function killCgroupTree(name: string): Promise<void> {
  const walk = (d: string, out: string[]): void => {
    out.push(d);
    try {
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name), out);
    } catch {
      // gone
    }
  };
  for (let round = 0; round < 3; round++) {
    let left = 0;
    for (const r of cgroupRoots()) {
      const dirs: string[] = [];
      if (existsSync(join(r, name))) walk(join(r, name), dirs);
      for (const d of dirs) {
        let procs: string[] = [];
        try {
          procs = readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
        } catch {
          continue;
        }
        for (const pid of procs) {
          if (Number(pid) === process.pid) continue;
          left++;
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            // gone
          }
        }
      }
    }
    if (left === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  removeCgroupParent(name);
}

/**
 * Runs `teardown` once: when the returned function is called (a bench's `finally`) or on
 * SIGINT/SIGTERM/SIGHUP, after which the process exits with 128 + the signal's number. A second
 * signal during the teardown exits at once.
 */
export function onInterrupt(teardown: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  const run = (): Promise<void> => (running ??= teardown());
  const signals = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const;
  const handlers = Object.entries(signals).map(([sig, num]) => {
    const h = (): void => {
      if (running) process.exit(128 + num);
      console.error(`bench: ${sig}: tearing down (pods, daemons, cgroups)`);
      void run()
        .catch((err: unknown) => console.error(`bench: teardown failed: ${(err as Error).message}`))
        .finally(() => process.exit(128 + num));
    };
    process.on(sig, h);
    return [sig, h] as const;
  });
  return async () => {
    try {
      await run();
    } finally {
      for (const [sig, h] of handlers) process.off(sig, h);
    }
  };
}
