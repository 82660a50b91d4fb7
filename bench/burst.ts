/**
 * Pods started in a burst, as kubelet does when a node gets its pods: N pods at once, each
 * RunPodSandbox + CreateContainer + StartContainer (busybox sleep, kubelet-style namespace
 * options), all in parallel; the figure is the time until every container runs, timed at the
 * client. Both daemons run side by side; runtimes alternate run by run; each run removes its
 * pods before the next. Images are pulled before timing; one warm-up burst per runtime.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { median, gitCommit, repoRoot } from './report.js';
import {
  describeMachine,
  fmtMs,
  fmtRatio,
  machineInfo,
  nowUtc,
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

export interface BurstBenchOptions {
  /** Burst sizes (pods started at once). */
  sizes: number[];
  runs: number;
  only?: Impl;
  record?: boolean;
  log?: (line: string) => void;
}

export interface BurstResult {
  machine: MachineInfo;
  loadAtEnd: number;
  runs: number;
  /** Median ms until all pods of a burst run, by size and runtime. */
  medians: Map<number, Partial<Record<Impl, number>>>;
  failures: string[];
}

const CALL = { timeoutMs: 180_000 };

async function burst(rt: BenchRuntime, n: number, tag: string, busybox: string, logRoot: string): Promise<number> {
  const rpc = rt.cri.runtime;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const name = `burst-${rt.impl}-${tag}-${i}`;
      const config = podConfig(name, join(logRoot, name));
      const { podSandboxId } = await rpc.runPodSandbox({ config }, CALL);
      const { containerId } = await rpc.createContainer({ podSandboxId, config: sleepContainerConfig(busybox), sandboxConfig: config }, CALL);
      await rpc.startContainer({ containerId }, CALL);
    }),
  );
  const dt = performance.now() - t0;
  await removeAllPods(rt.cri);
  return dt;
}

export async function runBurstBench(o: BurstBenchOptions): Promise<BurstResult> {
  const log = o.log ?? ((l: string) => console.log(l));
  const root = repoRoot();
  const impls: Impl[] = o.only ? [o.only] : ['containerd', 'berth'];
  const machine = machineInfo();
  const fx = await startFixtures();
  const logRoot = mkdtempSync(join(tmpdir(), 'bench-burst-logs-'));
  const runtimes = new Map<Impl, BenchRuntime>();
  const samples = new Map<string, number[]>();
  const failures: string[] = [];
  try {
    for (const impl of impls) {
      const rt = await startRuntime(impl, { registryHost: fx.registry.host, repoRoot: root });
      runtimes.set(impl, rt);
      await prePull(rt.cri, [fx.pause.ref, fx.busybox.ref]);
      await burst(rt, 2, 'warm', fx.busybox.ref, logRoot);
    }
    for (const n of o.sizes) {
      for (let run = 0; run < o.runs; run++) {
        const order = run % 2 === 0 ? impls : [...impls].reverse();
        for (const impl of order) {
          const rt = runtimes.get(impl)!;
          try {
            const dt = await burst(rt, n, `${n}-${run}`, fx.busybox.ref, logRoot);
            const k = `${n}/${impl}`;
            samples.set(k, [...(samples.get(k) ?? []), dt]);
            log(`burst: ${impl} ${n} pods run ${run + 1}: ${dt.toFixed(0)} ms`);
          } catch (err) {
            const msg = `${impl} ${n} pods: ${(err as Error).message.split('\n')[0]}`;
            failures.push(msg);
            log(`burst: FAILED ${msg}`);
            await removeAllPods(rt.cri);
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
  const medians = new Map<number, Partial<Record<Impl, number>>>();
  for (const n of o.sizes) {
    const m: Partial<Record<Impl, number>> = {};
    for (const impl of impls) {
      const xs = samples.get(`${n}/${impl}`);
      if (xs?.length) m[impl] = median(xs);
    }
    medians.set(n, m);
  }
  const r: BurstResult = { machine, loadAtEnd: machineInfo().load1, runs: o.runs, medians, failures };
  for (const line of burstTable(r).split('\n')) log(`burst: ${line}`);
  if (o.record ?? true) log(`burst: recorded in ${recordBurst(root, r)}`);
  return r;
}

export function burstTable(r: BurstResult): string {
  const rows = [...r.medians.entries()].map(
    ([n, m]) => `| ${n} pods at once | ${fmtMs(m.containerd)} | ${fmtMs(m.berth)} | **${fmtRatio(ratio(m.berth, m.containerd))}** |`,
  );
  return ['| burst | containerd ms (median) | berth ms (median) | berth / containerd |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

function recordBurst(root: string, r: BurstResult): string {
  const date = nowUtc();
  const body = `## Pod bursts (N pods started in parallel, berth vs containerd)

Time until every container of a burst runs: N × (RunPodSandbox + CreateContainer +
StartContainer) issued at once (busybox sleep, kubelet-style namespace options), timed at the
client; ${r.runs} runs per size and runtime (alternating), medians; pods are removed between
runs. Both daemons run side by side with their own bridge and subnet. Goal: ≤ 0.8× containerd
for 10 pods.

Latest: ${date} UTC, commit ${gitCommit(root)}; ${describeMachine(r.machine, r.loadAtEnd)}.${r.failures.length ? `\nFailures: ${r.failures.join('; ')}` : ''}

${burstTable(r)}`;
  const cells = [...r.medians.entries()]
    .map(([n, m]) => `${n}: ${fmtMs(m.containerd)} / ${fmtMs(m.berth)} (${fmtRatio(ratio(m.berth, m.containerd))})`)
    .join('; ');
  const row = `| ${date} | ${gitCommit(root)} | ${r.runs} | ${cells} | ${r.machine.load1.toFixed(1)} |`;
  return writeSection(root, 'burst', body, `| date (UTC) | commit | runs | pods: containerd / berth ms (ratio) | load |\n| --- | --- | --- | --- | --- |`, row);
}
