/**
 * `npm run bench` entry: runs the benchmarks and records each in its section of BENCHMARKS.md.
 *   node dist/bench/run.js [pull|pod|pod-shared|burst|memory|userns|unary|steady|probe ...] [--runs N] [--pods N]
 *                          [--duration S] [--probes R,R] [--only berth|containerd] [--quick] [--no-record]
 * With no names it runs them all. --runs defaults per bench (pull 3, pod 20, burst 3, userns 5, unary 200, probe 200);
 * --pods takes a list for memory (default 20,100) and the pod count for steady (default 100);
 * burst sizes with --burst (default 10,30); steady polls --duration seconds per phase (default
 * 180) with each probe rate of --probes (ExecSync/s, default 0,5).
 * probe: --runs ExecSync probes per runtime (default 200).
 * --quick shrinks the pull image (for checking the harness, not for figures; never recorded).
 */
import { parseArgs } from 'node:util';
import { runPullBench, type Impl } from './pull.js';
import { runPodBench } from './pod.js';
import { runMemoryBench } from './memory.js';
import { runBurstBench } from './burst.js';
import { runUsernsBench } from './userns.js';
import { runUnaryBench } from './unary.js';
import { runSteadyBench } from './steady.js';
import { runProbeBench } from './probe.js';
import { BIG_DEFAULT } from '../test/helpers/images.js';

const ALL = ['pull', 'pod', 'pod-shared', 'burst', 'memory', 'userns', 'unary', 'steady', 'probe'];

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    runs: { type: 'string' },
    pods: { type: 'string' },
    duration: { type: 'string' },
    probes: { type: 'string' },
    burst: { type: 'string', default: '10,30' },
    only: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'no-record': { type: 'boolean', default: false },
  },
});

function positiveInt(flag: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} must be a positive integer, got ${v}`);
  return n;
}

function intList(flag: string, v: string | undefined): number[] {
  return (v ?? '').split(',').map((x) => positiveInt(flag, x.trim(), 1));
}

if (values.only !== undefined && values.only !== 'berth' && values.only !== 'containerd') {
  throw new Error(`--only must be berth or containerd, got ${values.only}`);
}
const only = values.only as Impl | undefined;
const record = !values['no-record'];
const which = positionals.length ? positionals : ALL;
for (const name of which) if (!ALL.includes(name)) throw new Error(`unknown benchmark ${name} (known: ${ALL.join(', ')})`);

for (const name of which) {
  switch (name) {
    case 'pull': {
      const spec = values.quick ? { ...BIG_DEFAULT, filesPerSmallLayer: 500, largeFileBytes: 4 * 1024 * 1024 } : BIG_DEFAULT;
      await runPullBench({ runs: positiveInt('runs', values.runs, 3), only, spec, record: record && !values.quick });
      break;
    }
    case 'pod':
      await runPodBench({ runs: positiveInt('runs', values.runs, 20), only, record });
      break;
    case 'pod-shared':
      await runPodBench({ runs: positiveInt('runs', values.runs, 20), only, record, sharedPid: true });
      break;
    case 'burst':
      await runBurstBench({ sizes: intList('burst', values.burst), runs: positiveInt('runs', values.runs, 3), only, record });
      break;
    case 'memory':
      for (const pods of intList('pods', values.pods ?? '20,100')) await runMemoryBench({ pods, only, record });
      break;
    case 'userns': {
      // --quick: a small image, for checking the harness (never recorded).
      const spec = values.quick ? { ...BIG_DEFAULT, filesPerSmallLayer: 500, largeFileBytes: 4 * 1024 * 1024 } : BIG_DEFAULT;
      await runUsernsBench({ runs: positiveInt('runs', values.runs, 5), spec, record: record && !values.quick });
      break;
    }
    case 'unary':
      await runUnaryBench({ runs: positiveInt('runs', values.runs, 200), only, record });
      break;
    case 'steady': {
      const probeRates = (values.probes ?? '0,5').split(',').map((x) => {
        const n = Number(x.trim());
        if (!Number.isFinite(n) || n < 0) throw new Error(`--probes takes rates ≥ 0, got ${x}`);
        return n;
      });
      const pods = values.pods === undefined ? 100 : positiveInt('pods', values.pods, 100);
      await runSteadyBench({ pods, durationS: positiveInt('duration', values.duration, 180), probeRates, only, record });
      break;
    }
    case 'probe':
      await runProbeBench({ probes: positiveInt('runs', values.runs, 200), only, record });
      break;
  }
}
// gRPC channels and timers must not keep the process alive after the figures are out.
process.exit(0);
