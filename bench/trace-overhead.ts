/**
 * Cost of recording a startup step with Tracer.span compared with calling the step directly.
 * Run: npx tsx bench/trace-overhead.ts   (or node dist/bench/trace-overhead.js after a build)
 * Prints ns per call for: a direct await, a traced await, and the difference.
 */
import { Tracer } from '../src/cri/server/runtime-context.js';

const N = 200_000;
const step = async (): Promise<number> => 1;

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await fn();
  return Number(process.hrtime.bigint() - t0) / N;
}

async function main(): Promise<void> {
  // Keys rotate like pods do (bounded tracer: 512 keys, each with a few spans).
  let k = 0;
  const tracer = new Tracer();
  // Warm both paths first so the JIT settles.
  await time(step);
  await time(() => tracer.span(`pod-${k++ % 512}`, 'warm', step));
  const results: Array<{ direct: number; traced: number }> = [];
  for (let round = 0; round < 5; round++) {
    const fresh = new Tracer();
    const direct = await time(step);
    const traced = await time(() => fresh.span(`pod-${k++ % 512}`, 'step', step, { container: 'c' }));
    results.push({ direct, traced });
  }
  const med = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const direct = med(results.map((r) => r.direct));
  const traced = med(results.map((r) => r.traced));
  console.log(
    JSON.stringify({ calls: N, directNsPerCall: Math.round(direct), tracedNsPerCall: Math.round(traced), overheadNsPerSpan: Math.round(traced - direct) }),
  );
}

void main();
