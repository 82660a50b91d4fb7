/**
 * `npm run bench` entry: runs the benchmarks (today: pull) and records them in BENCHMARKS.md.
 *   node dist/bench/run.js [pull] [--runs N] [--only berth|containerd] [--quick] [--no-record]
 * --quick shrinks the image (for checking the harness, not for figures; never recorded).
 */
import { parseArgs } from 'node:util';
import { runPullBench, type Impl } from './pull.js';
import { BIG_DEFAULT } from '../test/helpers/images.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    runs: { type: 'string', default: '3' },
    only: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'no-record': { type: 'boolean', default: false },
  },
});

const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer, got ${values.runs}`);
if (values.only !== undefined && values.only !== 'berth' && values.only !== 'containerd') {
  throw new Error(`--only must be berth or containerd, got ${values.only}`);
}
const only = values.only as Impl | undefined;
const which = positionals.length ? positionals : ['pull'];

for (const name of which) {
  switch (name) {
    case 'pull': {
      const spec = values.quick
        ? { ...BIG_DEFAULT, filesPerSmallLayer: 500, largeFileBytes: 4 * 1024 * 1024 }
        : BIG_DEFAULT;
      await runPullBench({ runs, only, spec, record: !values.quick && !values['no-record'] });
      break;
    }
    default:
      throw new Error(`unknown benchmark ${name} (known: pull)`);
  }
}
// gRPC channels and timers must not keep the process alive after the figures are out.
process.exit(0);
