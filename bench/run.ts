/**
 * `npm run bench` entry: runs the benchmarks and records each in its section of BENCHMARKS.md.
 *   node dist/bench/run.js [pull|pod|pod-shared|burst|memory|userns ...] [--runs N] [--pods N]
 *                          [--only berth|containerd] [--quick] [--no-record]
 * With no names it runs them all. --runs defaults per bench (pull 3, pod 20, burst 3, userns 5);
 * --pods takes a list for memory (default 20,100) and burst sizes with --burst (default 10,30).
 * --quick shrinks the pull image (for checking the harness, not for figures; never recorded).
 */
import { parseArgs } from 'node:util';
import { runPullBench, type Impl } from './pull.js';
import { runPodBench } from './pod.js';
import { runMemoryBench } from './memory.js';
import { runBurstBench } from './burst.js';
import { runUsernsBench } from './userns.js';
import { BIG_DEFAULT } from '../test/helpers/images.js';

const ALL = ['pull', 'pod', 'pod-shared', 'burst', 'memory', 'userns'];

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    runs: { type: 'string' },
    pods: { type: 'string', default: '20,100' },
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
      const spec = values.quick
        ? { ...BIG_DEFAULT, filesPerSmallLayer: 500, largeFileBytes: 4 * 1024 * 1024 }
        : BIG_DEFAULT;
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
      for (const pods of intList('pods', values.pods)) await runMemoryBench({ pods, only, record });
      break;
    case 'userns': {
      // --quick: a small image, for checking the harness (never recorded).
      const spec = values.quick ? { ...BIG_DEFAULT, filesPerSmallLayer: 500, largeFileBytes: 4 * 1024 * 1024 } : BIG_DEFAULT;
      await runUsernsBench({ runs: positiveInt('runs', values.runs, 5), spec, record: record && !values.quick });
      break;
    }
  }
}
// gRPC channels and timers must not keep the process alive after the figures are out.
process.exit(0);
