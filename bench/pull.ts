/**
 * Cold pull + unpack of the `big` fixture from a loopback docker-registry: berth against
 * Debian's containerd, each driven through its CRI PullImage. Every run gets a fresh daemon
 * with a fresh root (nothing cached but the kernel's page cache, the same for both), and the
 * two runtimes alternate so drift in the machine hits both alike.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { connectCri } from '../src/cri/server/client.js';
import { startRegistry } from '../test/helpers/registry.js';
import { BIG_DEFAULT, bigImage, pushFixture, type BigSpec } from '../test/helpers/images.js';
import { startContainerd } from './containerd.js';
import { startBerthd } from './berthd.js';
import { cpuSeconds, peakRssKiB, type DaemonHandle } from './daemon-util.js';
import { appendBenchmarkRow, gitCommit, median, repoRoot } from './report.js';

export type Impl = 'berth' | 'containerd';

export interface PullBenchOptions {
  runs: number;
  only?: Impl;
  spec?: BigSpec;
  /** Write the result into BENCHMARKS.md (default true). */
  record?: boolean;
  log?: (line: string) => void;
}

export interface PullSample {
  impl: Impl;
  run: number;
  ms: number;
  /** Daemon CPU seconds spent during the pull. */
  cpuS: number;
  peakRssKiB: number;
  error?: string;
}

export interface PullBenchResult {
  ref: string;
  compressedBytes: number;
  unpackedBytes: number;
  layers: number;
  files: number;
  samples: PullSample[];
  median: Partial<Record<Impl, number>>;
  /** berth median / containerd median (below 1: berth is faster). */
  ratio?: number;
  /** 1-minute load average when the runs began (other work on the machine skews figures). */
  loadAtStart: number;
}

const starters: Record<Impl, (host: string, root: string) => Promise<DaemonHandle>> = {
  containerd: (registryHost) => startContainerd({ registryHost }),
  berth: (registryHost, root) => startBerthd({ registryHost, repoRoot: root }),
};

/** Kills (by pid) leftover processes whose command line names the daemon's temp dir, e.g. shims. */
function killStragglers(dir: string): void {
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent) || Number(ent) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${ent}/cmdline`, 'utf8').includes(dir)) process.kill(Number(ent), 'SIGKILL');
    } catch {
      // raced with its exit
    }
  }
}

async function onePull(impl: Impl, run: number, registryHost: string, ref: string, root: string): Promise<PullSample> {
  let daemon: DaemonHandle | undefined;
  try {
    daemon = await starters[impl](registryHost, root);
    const cri = connectCri(daemon.socket);
    try {
      // Flush the previous run's dirty pages so its writeback does not land inside this timing.
      if (!process.env.BENCH_NO_SYNC) spawnSync('sync');
      // Start every run from the same page-cache state: on this VM a cache full of the previous
      // runs' files made later runs of either runtime several times slower.
      try {
        writeFileSync('/proc/sys/vm/drop_caches', '3');
      } catch {
        /* not root or not Linux: runs stay comparable, only noisier */
      }
      const cpu0 = cpuSeconds(daemon.pid);
      const t0 = process.hrtime.bigint();
      const res = await cri.image.pullImage({ image: { image: ref } }, { timeoutMs: 600_000 });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const cpuS = cpuSeconds(daemon.pid) - cpu0;
      if (!res.imageRef) throw new Error('PullImage returned an empty image_ref');
      const st = await cri.image.imageStatus({ image: { image: ref } });
      if (!st.image) throw new Error('ImageStatus does not know the image just pulled');
      return { impl, run, ms, cpuS, peakRssKiB: peakRssKiB(daemon.pid) };
    } finally {
      cri.close();
    }
  } catch (err) {
    return { impl, run, ms: NaN, cpuS: NaN, peakRssKiB: 0, error: (err as Error).message.split('\n').slice(0, 6).join(' | ') };
  } finally {
    if (daemon) {
      await daemon.stop();
      killStragglers(daemon.dir);
    }
  }
}

export async function runPullBench(opts: PullBenchOptions): Promise<PullBenchResult> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const root = repoRoot();
  const spec = opts.spec ?? BIG_DEFAULT;
  const impls: Impl[] = opts.only ? [opts.only] : ['containerd', 'berth'];

  log(`pull: building the big fixture (${spec.smallLayers * spec.filesPerSmallLayer} small files, ${spec.largeLayers * spec.largeFilesPerLayer} large)`);
  const image = await bigImage(spec);
  const registry = await startRegistry();
  try {
    const pushed = await pushFixture(registry.url, 'big', 'latest', image);
    const result: PullBenchResult = {
      ref: pushed.ref,
      compressedBytes: image.layers.reduce((n, l) => n + l.size, 0),
      unpackedBytes: image.layers.reduce((n, l) => n + l.uncompressedSize, 0),
      layers: image.layers.length,
      files: spec.smallLayers * spec.filesPerSmallLayer + spec.largeLayers * spec.largeFilesPerLayer,
      samples: [],
      median: {},
      loadAtStart: loadavg()[0],
    };
    log(`pull: ${pushed.ref} ${mb(result.compressedBytes)} compressed, ${mb(result.unpackedBytes)} tar, ${result.layers} layers`);
    for (let run = 1; run <= opts.runs; run++) {
      // Alternate who goes first so neither always pulls right after the other.
      const order = run % 2 === 1 ? impls : [...impls].reverse();
      for (const impl of order) {
        const s = await onePull(impl, run, registry.host, pushed.ref, root);
        result.samples.push(s);
        log(
          s.error
            ? `pull: ${impl} run ${run}: FAILED ${s.error}`
            : `pull: ${impl} run ${run}: ${s.ms.toFixed(0)} ms, ${s.cpuS.toFixed(1)} CPU s, peak RSS ${(s.peakRssKiB / 1024).toFixed(0)} MiB`,
        );
      }
    }
    for (const impl of impls) {
      const ok = result.samples.filter((s) => s.impl === impl && !s.error).map((s) => s.ms);
      if (ok.length > 0) result.median[impl] = median(ok);
    }
    if (result.median.berth !== undefined && result.median.containerd !== undefined) {
      result.ratio = result.median.berth / result.median.containerd;
    }
    log(
      `pull: median containerd ${fmt(result.median.containerd)} ms, berth ${fmt(result.median.berth)} ms, ratio berth/containerd ${result.ratio?.toFixed(2) ?? 'n/a'}`,
    );
    if (opts.record ?? true) {
      const file = record(root, result, opts.runs);
      log(`pull: recorded in ${file}`);
    }
    return result;
  } finally {
    await registry.stop();
  }
}

const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(0)} MiB`;
const fmt = (n: number | undefined): string => (n === undefined ? 'n/a' : n.toFixed(0));

function record(root: string, r: PullBenchResult, runs: number): string {
  const rss = (impl: Impl): string => {
    const xs = r.samples.filter((s) => s.impl === impl && !s.error).map((s) => s.peakRssKiB / 1024);
    return xs.length ? median(xs).toFixed(0) : 'n/a';
  };
  const cpu = (impl: Impl): string => {
    const xs = r.samples.filter((s) => s.impl === impl && !s.error).map((s) => s.cpuS);
    return xs.length ? median(xs).toFixed(1) : 'n/a';
  };
  const fails = (impl: Impl): string => {
    const n = r.samples.filter((s) => s.impl === impl && s.error).length;
    return n ? ` (${n} failed)` : '';
  };
  const date = new Date().toISOString().slice(0, 16).replace('T', ' ');
  const row = `| ${date} | ${gitCommit(root)} | ${mb(r.compressedBytes)} / ${mb(r.unpackedBytes)} / ${r.files} files | ${runs} | ${fmt(r.median.containerd)}${fails('containerd')} | ${fmt(r.median.berth)}${fails('berth')} | ${r.ratio?.toFixed(2) ?? 'n/a'} | ${cpu('containerd')} / ${cpu('berth')} | ${rss('containerd')} / ${rss('berth')} | ${r.loadAtStart.toFixed(1)} |`;
  return appendBenchmarkRow(
    root,
    'pull',
    'Cold image pull (CRI PullImage, `big` fixture)',
    `Cold pull + unpack of the generated \`big\` image (gzip layers: many 1-8 KB files plus a few
large incompressible files) from a loopback docker-registry, through each runtime's CRI
PullImage. Each run starts a fresh daemon with an empty root; runtimes alternate. Times are
medians in ms (lower is better); ratio = berth / containerd. Daemon CPU is user + system
seconds the daemon (and its waited-for children) spent during the pull: steadier than wall
time when other work shares the disk. Peak RSS is the daemon's VmHWM
after the pull (MiB); load is the 1-minute load average at the start (2 cores: above ~2 the
figures are skewed by other work). containerd is Debian's 1.6 with the overlayfs snapshotter.`,
    `| date (UTC) | commit | image (gz / tar / files) | runs | containerd ms | berth ms | ratio | daemon CPU s (containerd / berth) | peak RSS MiB (containerd / berth) | load |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |`,
    row,
  );
}
