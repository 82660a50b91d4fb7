/**
 * Starting a pod with its own user namespace (Kubernetes hostUsers: false) on a big image
 * (~330 MB unpacked: busybox plus the pull bench's `big` layers, built here and pushed to a
 * loopback registry). Requests are shaped as kubelet sends them: userns_options mode POD with
 * one 65536-id range from container id 0, a different range for every pod (kubelet hands out
 * one range per pod), on the pod and on the container.
 *
 * Side by side, each its own private daemon on the same machine, rotating who goes first:
 * - berth with the rootfs over idmapped image layers (userns_rootfs = "idmap"),
 * - berth with the ownership-shifted copy of the image per mapping (userns_rootfs = "copy"),
 * - Debian's containerd 1.6 (CRI plugin, runc.v2). Its CRI has no user-namespace support: the
 *   bench checks where its container really ran and says so (a host-userns reference then).
 * Timed on the client: RunPodSandbox, CreateContainer, StartContainer; the pod is then removed
 * untimed. Also measured: bytes the daemon's root grew by for the container (du, after create).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { gitCommit, median, repoRoot } from './report.js';
import {
  describeMachine,
  fmtMs,
  fmtRatio,
  machineInfo,
  nowUtc,
  BENCH_CGROUP_PARENT,
  prePull,
  ratio,
  removeAllPods,
  SLEEP_COMMAND,
  startFixtures,
  startRuntime,
  writeSection,
  type BenchRuntime,
  type ContainerConfigInit,
  type MachineInfo,
  type PodConfigInit,
} from './cri-common.js';
import { BIG_DEFAULT, bigRunnableImage, pushFixture, type BigSpec } from '../test/helpers/images.js';
import { NamespaceMode } from '../src/api/cri/runtime/v1/api_pb.js';

export type Variant = 'berth-idmap' | 'berth-copy' | 'containerd';
const VARIANTS: Variant[] = ['berth-idmap', 'berth-copy', 'containerd'];
const STEPS = ['RunPodSandbox', 'CreateContainer', 'StartContainer'] as const;
type Step = (typeof STEPS)[number];

interface Sample {
  ms: Record<Step, number>;
  /** Bytes the daemon's root grew by from before RunPodSandbox to after CreateContainer. */
  diskBytes: number;
  /** Whether the container ran in a user namespace of its own (read from /proc). */
  ownUserns: boolean;
}

export interface UsernsBenchOptions {
  runs: number;
  warmup?: number;
  record?: boolean;
  spec?: BigSpec;
  log?: (line: string) => void;
}

const CALL = { timeoutMs: 600_000 };
const RANGE = 65536;

/** du -s in bytes of `dir` (allocated blocks), 0 when it cannot be read. */
function du(dir: string): number {
  const r = spawnSync('du', ['-s', '-B1', '-x', dir], { encoding: 'utf8' });
  return Number(r.stdout.split('\t')[0]) || 0;
}

function usernsOptions(range: number) {
  const m = [{ containerId: 0, hostId: range * RANGE, length: RANGE }];
  return { mode: NamespaceMode.POD, uids: m, gids: m };
}

async function oneStart(rt: BenchRuntime, name: string, image: string, range: number, logRoot: string): Promise<Sample> {
  const rpc = rt.cri.runtime;
  const ms: Partial<Record<Step, number>> = {};
  const timed = async <T>(step: Step, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const r = await fn();
    ms[step] = performance.now() - t0;
    return r;
  };
  // kubelet's pod without shareProcessNamespace, with hostUsers: false.
  const namespaceOptions = { network: NamespaceMode.POD, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD, usernsOptions: usernsOptions(range) };
  const logDirectory = join(logRoot, name);
  mkdirSync(logDirectory, { recursive: true });
  const config: PodConfigInit = {
    metadata: { name, uid: `uid-${name}`, namespace: 'bench', attempt: 0 },
    hostname: name.slice(0, 63),
    logDirectory,
    labels: { bench: 'berth' },
    linux: { cgroupParent: `/${BENCH_CGROUP_PARENT}`, securityContext: { namespaceOptions } },
  };
  const cconfig: ContainerConfigInit = {
    metadata: { name: 'sleep', attempt: 0 },
    image: { image },
    command: SLEEP_COMMAND,
    logPath: 'sleep.log',
    linux: { securityContext: { namespaceOptions } },
  };
  const root = join(rt.daemon.dir, 'root');
  const before = du(root);
  let podId: string | undefined;
  try {
    podId = (await timed('RunPodSandbox', () => rpc.runPodSandbox({ config }, CALL))).podSandboxId;
    const pid = podId;
    const containerId = (await timed('CreateContainer', () => rpc.createContainer({ podSandboxId: pid, config: cconfig, sandboxConfig: config }, CALL)))
      .containerId;
    await timed('StartContainer', () => rpc.startContainer({ containerId }, CALL));
    const diskBytes = du(root) - before;
    const info = (await rpc.containerStatus({ containerId, verbose: true }, CALL)).info.info;
    const cpid = Number((JSON.parse(info ?? '{}') as { pid?: number }).pid);
    if (!(cpid > 0)) throw new Error(`${rt.label}: no container pid in verbose info`);
    const ownUserns = readlinkSync(`/proc/${cpid}/ns/user`) !== readlinkSync('/proc/self/ns/user');
    if (ownUserns && !readFileSync(`/proc/${cpid}/uid_map`, 'utf8').includes(String(range * RANGE)))
      throw new Error(`${rt.label}: the container's uid_map is not the pod's`);
    return { ms: ms as Record<Step, number>, diskBytes, ownUserns };
  } finally {
    if (podId !== undefined) {
      await rpc.stopPodSandbox({ podSandboxId: podId }, CALL).catch(() => undefined);
      await rpc.removePodSandbox({ podSandboxId: podId }, CALL).catch(() => undefined);
    }
  }
}

export interface VariantStats {
  samples: number;
  failures: number;
  firstError?: string;
  steps: Partial<Record<Step, number>>;
  /** Median of RunPodSandbox + CreateContainer (what the issue asks to compare). */
  runCreate?: number;
  startPath?: number;
  diskMiB?: number;
  ownUserns?: boolean;
}

function summarize(xs: Sample[], failures: number, firstError?: string): VariantStats {
  if (xs.length === 0) return { samples: 0, failures, firstError, steps: {} };
  const steps: Partial<Record<Step, number>> = {};
  for (const s of STEPS) steps[s] = median(xs.map((x) => x.ms[s]));
  return {
    samples: xs.length,
    failures,
    firstError,
    steps,
    runCreate: median(xs.map((x) => x.ms.RunPodSandbox + x.ms.CreateContainer)),
    startPath: median(xs.map((x) => STEPS.reduce((n, s) => n + x.ms[s], 0))),
    diskMiB: median(xs.map((x) => x.diskBytes)) / 2 ** 20,
    ownUserns: xs.every((x) => x.ownUserns),
  };
}

export interface UsernsBenchResult {
  machine: MachineInfo;
  loadAtEnd: number;
  runs: number;
  imageMiB: number;
  layers: number;
  /** The commit the daemons were started from (read before they start, not when recording). */
  commit: string;
  stats: Partial<Record<Variant, VariantStats>>;
}

export async function runUsernsBench(o: UsernsBenchOptions): Promise<UsernsBenchResult> {
  const log = o.log ?? ((l: string) => console.log(l));
  const root = repoRoot();
  const warmup = o.warmup ?? 1;
  const machine = machineInfo();
  const commit = gitCommit(root);
  log(`userns: building the big runnable image`);
  const image = await bigRunnableImage(o.spec ?? BIG_DEFAULT);
  const imageMiB = image.layers.reduce((n, l) => n + l.uncompressedSize, 0) / 2 ** 20;
  const fx = await startFixtures();
  const runtimes = new Map<Variant, BenchRuntime>();
  const logRoot = mkdtempSync(join(tmpdir(), 'bench-userns-logs-'));
  try {
    const pushed = await pushFixture(fx.registry.url, 'big-runnable', 'latest', image);
    log(`userns: ${pushed.ref}, ${imageMiB.toFixed(0)} MiB of layer tar, ${image.layers.length} layers`);
    for (const v of VARIANTS) {
      const impl = v === 'containerd' ? 'containerd' : 'berth';
      const top = v === 'berth-idmap' ? 'userns_rootfs = "idmap"\n' : v === 'berth-copy' ? 'userns_rootfs = "copy"\n' : '';
      const rt = await startRuntime(impl, { registryHost: fx.registry.host, repoRoot: root, label: v, berthTopToml: top, traversable: true });
      runtimes.set(v, rt);
      log(`userns: ${v} pulling`);
      await prePull(rt.cri, [pushed.ref, fx.pause.ref]);
    }
    const samples = new Map<Variant, Sample[]>(VARIANTS.map((v) => [v, []]));
    const failed = new Map<Variant, { n: number; first?: string }>(VARIANTS.map((v) => [v, { n: 0 }]));
    let range = 16; // host ids from 16 × 65536 up: one fresh range per pod
    for (let run = 0; run < warmup + o.runs; run++) {
      const order = VARIANTS.map((_, i) => VARIANTS[(i + run) % VARIANTS.length]!);
      for (const v of order) {
        const rt = runtimes.get(v)!;
        try {
          const s = await oneStart(rt, `userns-${v}-${run}`, pushed.ref, range++, logRoot);
          if (run >= warmup) samples.get(v)!.push(s);
          log(
            `userns: ${v} run ${run + 1}${run < warmup ? ' (warm-up)' : ''}: ${STEPS.map((st) => `${st} ${fmtMs(s.ms[st])}`).join(', ')} ms; +${(s.diskBytes / 2 ** 20).toFixed(1)} MiB; own userns ${s.ownUserns}`,
          );
        } catch (err) {
          const f = failed.get(v)!;
          f.n++;
          f.first ??= (err as Error).message.split('\n')[0];
          log(`userns: ${v} run ${run + 1} failed: ${(err as Error).message.split('\n')[0]}`);
          await removeAllPods(rt.cri);
        }
      }
    }
    const stats: Partial<Record<Variant, VariantStats>> = {};
    for (const v of VARIANTS) stats[v] = summarize(samples.get(v)!, failed.get(v)!.n, failed.get(v)!.first);
    const result: UsernsBenchResult = { machine, loadAtEnd: machineInfo().load1, runs: o.runs, imageMiB, layers: image.layers.length, commit, stats };
    for (const line of reportLines(result)) log(line);
    if (o.record) log(`userns: recorded in ${recordUserns(root, result)}`);
    return result;
  } finally {
    for (const rt of runtimes.values()) {
      await removeAllPods(rt.cri);
      await rt.stop();
    }
    await fx.registry.stop();
    rmSync(logRoot, { recursive: true, force: true });
  }
}

function reportLines(r: UsernsBenchResult): string[] {
  const s = r.stats;
  const row = (v: Variant) => {
    const x = s[v];
    if (!x || x.samples === 0) return `| ${v} | n/a | n/a | n/a | n/a | n/a | n/a | ${x?.failures ?? 0}: ${x?.firstError ?? ''} |`;
    return `| ${v} | ${fmtMs(x.steps.RunPodSandbox)} | ${fmtMs(x.steps.CreateContainer)} | ${fmtMs(x.steps.StartContainer)} | **${fmtMs(x.runCreate)}** | ${fmtMs(x.startPath)} | ${x.diskMiB?.toFixed(1)} | ${x.ownUserns ? 'yes' : 'no (host)'}${x.failures ? `; ${x.failures} failed` : ''} |`;
  };
  return [
    '| runtime | RunPodSandbox | CreateContainer | StartContainer | Run+Create | start path | disk per pod (MiB) | own user namespace |',
    '|---|---|---|---|---|---|---|---|',
    ...VARIANTS.map(row),
    '',
    `copy / idmap, Run+Create: ${fmtRatio(ratio(s['berth-copy']?.runCreate, s['berth-idmap']?.runCreate))}; ` +
      `idmap / containerd, Run+Create: ${fmtRatio(ratio(s['berth-idmap']?.runCreate, s.containerd?.runCreate))}`,
  ];
}

function recordUserns(root: string, r: UsernsBenchResult): string {
  const s = r.stats;
  const cd = s.containerd;
  const cdNote = cd?.samples
    ? cd.ownUserns
      ? 'containerd ran the containers in a user namespace of their own.'
      : 'containerd 1.6 has no user-namespace support in its CRI: it ignored userns_options and ran the containers in the host user namespace (checked in /proc), so its row is a reference without user namespaces, not a like-for-like figure.'
    : `containerd: no sample (${cd?.firstError ?? 'not run'}).`;
  const body = `## Pod start in a user namespace (big image)

\`npm run bench -- userns\` (bench/userns.ts). ${nowUtc()} UTC, commit ${r.commit}, ${describeMachine(r.machine, r.loadAtEnd)}; ${r.runs} pods per runtime (medians, ms, timed on the client), after 1 warm-up each.
Image: busybox + the pull bench's big layers, ${r.imageMiB.toFixed(0)} MiB of layer tar in ${r.layers} layers. Every pod gets its own 65536-id range (as kubelet hands them out), on pod and container.
berth-idmap: overlay over idmapped image layers; berth-copy: the ownership-shifted copy of the image per mapping (the fallback). ${cdNote}
Disk per pod: growth of the daemon's root from before RunPodSandbox to after StartContainer (du).

${reportLines(r).join('\n')}`;
  const head =
    '| date (UTC) | commit | load | idmap Run+Create | copy Run+Create | containerd Run+Create | copy/idmap | disk idmap / copy (MiB) |\n|---|---|---|---|---|---|---|---|';
  const row = `| ${nowUtc()} | ${r.commit} | ${r.machine.load1.toFixed(2)}–${r.loadAtEnd.toFixed(2)} | ${fmtMs(s['berth-idmap']?.runCreate)} | ${fmtMs(s['berth-copy']?.runCreate)} | ${fmtMs(cd?.runCreate)} | ${fmtRatio(ratio(s['berth-copy']?.runCreate, s['berth-idmap']?.runCreate))} | ${s['berth-idmap']?.diskMiB?.toFixed(1) ?? 'n/a'} / ${s['berth-copy']?.diskMiB?.toFixed(1) ?? 'n/a'} |`;
  return writeSection(root, 'userns', body, head, row);
}
