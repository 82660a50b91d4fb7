/**
 * Pod lifecycle latency through the CRI, berth against Debian's containerd (CRI plugin,
 * runc.v2 shim), both daemons running side by side on the same machine with the same CNI
 * setup (bridge + host-local, own bridge each). One cycle = RunPodSandbox, CreateContainer
 * (busybox sleep that exits on SIGTERM), StartContainer, StopContainer (timeout 2 s),
 * RemoveContainer, StopPodSandbox, RemovePodSandbox, each timed on the client. The runtimes
 * alternate cycle by cycle (who goes first flips every run) so drift hits both alike. Images
 * are pulled before timing; the first cycles of each runtime are warm-up and not counted.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { median, gitCommit, repoRoot } from './report.js';
import {
  berthPodRpcsPresent,
  describeMachine,
  fmtMs,
  fmtRatio,
  machineInfo,
  nowUtc,
  percentile,
  podConfig,
  prePull,
  ratio,
  removeAllPods,
  sleepContainerConfig,
  startFixtures,
  startRuntime,
  writeSection,
  type BenchRuntime,
  type Impl,
  type MachineInfo,
} from './cri-common.js';

export const POD_STEPS = [
  'RunPodSandbox',
  'CreateContainer',
  'StartContainer',
  'StopContainer',
  'RemoveContainer',
  'StopPodSandbox',
  'RemovePodSandbox',
] as const;
export type PodStep = (typeof POD_STEPS)[number];
/** The steps a pod waits for before its workload runs. */
export const START_PATH: readonly PodStep[] = ['RunPodSandbox', 'CreateContainer', 'StartContainer'];

export type Cycle = Record<PodStep, number>;

export interface PodBenchOptions {
  runs: number;
  only?: Impl;
  /** Uncounted cycles per runtime before the measured ones (default 2). */
  warmup?: number;
  record?: boolean;
  /** The CRI's default pod (pid namespace shared: berth runs a pause); recorded as its own section. */
  sharedPid?: boolean;
  log?: (line: string) => void;
}

export interface StepStats {
  median: number;
  p90: number;
}

export interface ImplStats {
  cycles: number;
  failures: number;
  firstError?: string;
  steps: Partial<Record<PodStep, StepStats>>;
  /** Median over cycles of RunPodSandbox + CreateContainer + StartContainer. */
  startPath?: StepStats;
  /** Median over cycles of the whole lifecycle. */
  total?: StepStats;
}

export interface PodBenchResult {
  machine: MachineInfo;
  loadAtEnd: number;
  runs: number;
  stats: Partial<Record<Impl, ImplStats>>;
  sharedPid?: boolean;
}

const CALL = { timeoutMs: 120_000 };

/** One timed pod lifecycle. On failure, removes what it made and rethrows. */
async function cycle(rt: BenchRuntime, name: string, busybox: string, logRoot: string, sharedPid = false): Promise<Cycle> {
  const rpc = rt.cri.runtime;
  const out: Partial<Cycle> = {};
  const timed = async <T>(step: PodStep, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const r = await fn();
    out[step] = performance.now() - t0;
    return r;
  };
  const config = podConfig(name, join(logRoot, name), { sharedPid });
  let podId: string | undefined;
  try {
    podId = (await timed('RunPodSandbox', () => rpc.runPodSandbox({ config }, CALL))).podSandboxId;
    const pid = podId;
    const containerId = (
      await timed('CreateContainer', () =>
        rpc.createContainer({ podSandboxId: pid, config: sleepContainerConfig(busybox, { sharedPid }), sandboxConfig: config }, CALL),
      )
    ).containerId;
    await timed('StartContainer', () => rpc.startContainer({ containerId }, CALL));
    await timed('StopContainer', () => rpc.stopContainer({ containerId, timeout: 2n }, CALL));
    await timed('RemoveContainer', () => rpc.removeContainer({ containerId }, CALL));
    await timed('StopPodSandbox', () => rpc.stopPodSandbox({ podSandboxId: pid }, CALL));
    await timed('RemovePodSandbox', () => rpc.removePodSandbox({ podSandboxId: pid }, CALL));
    return out as Cycle;
  } catch (err) {
    if (podId !== undefined) {
      await rpc.stopPodSandbox({ podSandboxId: podId }, CALL).catch(() => undefined);
      await rpc.removePodSandbox({ podSandboxId: podId }, CALL).catch(() => undefined);
    }
    throw err;
  }
}

export function stepStats(xs: number[]): StepStats | undefined {
  return xs.length === 0 ? undefined : { median: median(xs), p90: percentile(xs, 90) };
}

/** Per-step, start-path and total statistics over successful cycles. */
export function summarize(cycles: Cycle[], failures: number, firstError?: string): ImplStats {
  const steps: Partial<Record<PodStep, StepStats>> = {};
  for (const s of POD_STEPS) {
    const st = stepStats(cycles.map((c) => c[s]));
    if (st) steps[s] = st;
  }
  const sum = (c: Cycle, which: readonly PodStep[]): number => which.reduce((n, s) => n + c[s], 0);
  return {
    cycles: cycles.length,
    failures,
    firstError,
    steps,
    startPath: stepStats(cycles.map((c) => sum(c, START_PATH))),
    total: stepStats(cycles.map((c) => sum(c, POD_STEPS))),
  };
}

export async function runPodBench(opts: PodBenchOptions): Promise<PodBenchResult> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const root = repoRoot();
  const warmup = opts.warmup ?? 2;
  let impls: Impl[] = opts.only ? [opts.only] : ['containerd', 'berth'];
  if (impls.includes('berth') && !berthPodRpcsPresent(root)) {
    log('pod: berth has no RunPodSandbox handler yet (src/cri/server/handlers-sandbox.ts): measuring containerd only');
    impls = impls.filter((i) => i !== 'berth');
  }
  const machine = machineInfo();
  const fx = await startFixtures();
  const logRoot = mkdtempSync(join(tmpdir(), 'bench-pod-logs-'));
  const runtimes = new Map<Impl, BenchRuntime>();
  const cycles = new Map<Impl, Cycle[]>();
  const failures = new Map<Impl, { n: number; first?: string }>();
  try {
    for (const impl of impls) {
      const rt = await startRuntime(impl, { registryHost: fx.registry.host, repoRoot: root });
      runtimes.set(impl, rt);
      await prePull(rt.cri, [fx.pause.ref, fx.busybox.ref]);
      cycles.set(impl, []);
      failures.set(impl, { n: 0 });
      log(`pod: ${impl} up (pid ${rt.daemon.pid}, bridge ${rt.net.bridge}, ${rt.net.subnet})`);
    }
    const live = (): Impl[] => impls.filter((i) => runtimes.has(i));
    for (let run = 1 - warmup; run <= opts.runs; run++) {
      const order = run % 2 === 0 ? live() : [...live()].reverse();
      for (const impl of order) {
        const rt = runtimes.get(impl)!;
        const name = `bench-${impl}-${run + warmup}`;
        try {
          const c = await cycle(rt, name, fx.busybox.ref, logRoot, opts.sharedPid);
          if (run >= 1) cycles.get(impl)!.push(c);
          const start = START_PATH.reduce((n, s) => n + c[s], 0);
          log(
            `pod: ${impl} ${run >= 1 ? `run ${run}` : 'warm-up'}: start path ${start.toFixed(0)} ms (${POD_STEPS.map((s) => `${s} ${c[s].toFixed(0)}`).join(', ')})`,
          );
        } catch (err) {
          const f = failures.get(impl)!;
          f.n++;
          const msg = (err as Error).message.split('\n').slice(0, 4).join(' | ');
          f.first ??= msg;
          log(`pod: ${impl} ${run >= 1 ? `run ${run}` : 'warm-up'}: FAILED ${msg}`);
          // A runtime that cannot run a single pod is dropped rather than failing 20 more times.
          if (f.n >= 3 && cycles.get(impl)!.length === 0) {
            log(`pod: ${impl}: giving up after ${f.n} failures`);
            await rt.stop();
            runtimes.delete(impl);
          }
        }
      }
    }
  } finally {
    for (const rt of runtimes.values()) {
      await removeAllPods(rt.cri);
      await rt.stop();
    }
    rmSync(logRoot, { recursive: true, force: true });
    await fx.registry.stop();
  }
  const result: PodBenchResult = { machine, loadAtEnd: machineInfo().load1, runs: opts.runs, stats: {}, sharedPid: opts.sharedPid };
  for (const impl of impls) {
    const f = failures.get(impl);
    result.stats[impl] = summarize(cycles.get(impl) ?? [], f?.n ?? 0, f?.first);
  }
  for (const line of podTable(result).split('\n')) log(`pod: ${line}`);
  if (opts.record ?? true) log(`pod: recorded in ${recordPod(root, result)}`);
  return result;
}

const cell = (s: StepStats | undefined): string => (s ? `${fmtMs(s.median)} (${fmtMs(s.p90)})` : 'n/a');

/** Markdown table: per step, containerd and berth median (p90) and the ratio of medians. */
export function podTable(r: PodBenchResult): string {
  const c = r.stats.containerd;
  const b = r.stats.berth;
  const rows = POD_STEPS.map((s) => `| ${s} | ${cell(c?.steps[s])} | ${cell(b?.steps[s])} | ${fmtRatio(ratio(b?.steps[s]?.median, c?.steps[s]?.median))} |`);
  rows.push(
    `| **start path** (Run + Create + Start) | ${cell(c?.startPath)} | ${cell(b?.startPath)} | **${fmtRatio(ratio(b?.startPath?.median, c?.startPath?.median))}** |`,
  );
  rows.push(`| whole lifecycle | ${cell(c?.total)} | ${cell(b?.total)} | ${fmtRatio(ratio(b?.total?.median, c?.total?.median))} |`);
  return ['| step | containerd ms median (p90) | berth ms median (p90) | berth / containerd |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

function recordPod(root: string, r: PodBenchResult): string {
  const c = r.stats.containerd;
  const b = r.stats.berth;
  const counts = (s: ImplStats | undefined): string =>
    s ? `${s.cycles} cycles${s.failures ? `, ${s.failures} failed: ${s.firstError ?? ''}` : ''}` : 'not run';
  const date = nowUtc();
  const body = `## Pod lifecycle latency (CRI, berth vs containerd)${r.sharedPid ? ', pods sharing a pid namespace' : ''}

Each cycle: RunPodSandbox (CNI bridge + host-local; pause fixture as sandbox image), CreateContainer (busybox
\`sh -c 'trap "exit 0" TERM; sleep 3600 & wait'\`), StartContainer, StopContainer (timeout 2 s; the
process exits on SIGTERM), RemoveContainer, StopPodSandbox, RemovePodSandbox, timed at the
client. Both daemons run at the same time, each with a private root, its own bridge and a
198.18.x.0/24; ${r.sharedPid ? "the CRI's default namespace options (network, ipc and pid: POD; berth then runs a pause like containerd)" : 'namespace options as the kubelet sends them (pid: CONTAINER, network and ipc: POD)'}; cycles alternate between them (the first flips each run); images are pulled
first; ${r.runs} measured cycles per runtime after 2 warm-up cycles. containerd is Debian's 1.6
(CRI plugin, containerd-shim-runc-v2, runc 1.1); berth uses its one berth-shim for the node
and a conmon per container. Lower is better; the goal for the start path is berth /
containerd ≤ ${r.sharedPid ? '0.8' : '0.7'}×.

How the runtimes differ on this path: containerd runs a pause container for every pod and a
shim process per pod; berth pins the pod's namespaces (one short process) and runs a pause
only for pods sharing a pid namespace${r.sharedPid ? '' : ', so these pods have none'}. Its shim is already running (one per
node): a container costs a conmon, which runs \`runc create\`. containerd creates the
container's task in StartContainer, berth in CreateContainer (compare the sums).

Latest: ${date} UTC, commit ${gitCommit(root)}; ${describeMachine(r.machine, r.loadAtEnd)}.
containerd: ${counts(c)}; berth: ${counts(b)}.

${podTable(r)}`;
  const row = `| ${date} | ${gitCommit(root)} | ${r.runs} | ${fmtMs(c?.startPath?.median)} | ${fmtMs(b?.startPath?.median)} | ${fmtRatio(ratio(b?.startPath?.median, c?.startPath?.median))} | ${fmtMs(c?.total?.median)} | ${fmtMs(b?.total?.median)} | ${r.machine.load1.toFixed(1)} |`;
  return writeSection(
    root,
    r.sharedPid ? 'pod-shared' : 'pod',
    body,
    `| date (UTC) | commit | runs | containerd start path ms | berth start path ms | ratio | containerd lifecycle ms | berth lifecycle ms | load |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |`,
    row,
  );
}
