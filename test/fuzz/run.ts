/**
 * `npm run fuzz -- --seconds N [--seed S] [--target NAME] [--cap-ms MS]`: runs every fuzz
 * target (or one) for N seconds each, each in a worker thread with a heap limit and a
 * watchdog (a synchronous hang cannot be timed out from inside: the worker is terminated and
 * the iteration reported). Prints executions per target and the findings, each reproducible
 * from its seed and iteration; exits 1 if there is any.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { runTarget, type Finding, type RunResult } from './engine.js';
import { targets } from './targets.js';

interface Job {
  target: string;
  seed: number;
  seconds: number;
  capMs: number;
  progress: SharedArrayBuffer;
}

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

async function inWorker(job: Job): Promise<RunResult> {
  const progress = new Int32Array(job.progress);
  return new Promise((resolve) => {
    const w = new Worker(fileURLToPath(import.meta.url), { workerData: job, resourceLimits: { maxOldGenerationSizeMb: 768 } });
    let last = -1;
    let since = Date.now();
    const watchdog = setInterval(() => {
      const now = Atomics.load(progress, 0);
      if (now !== last) {
        last = now;
        since = Date.now();
      } else if (Date.now() - since > job.capMs * 3 + 5000) {
        clearInterval(watchdog);
        void w.terminate();
        const f: Finding = {
          target: job.target,
          seed: job.seed,
          iteration: now,
          kind: 'hang',
          message: `no progress for ${Date.now() - since} ms (worker terminated)`,
        };
        resolve({ target: job.target, execs: now, expectedErrors: 0, findings: [f], ms: job.seconds * 1000 });
      }
    }, 500);
    w.once('message', (r: RunResult) => {
      clearInterval(watchdog);
      resolve(r);
    });
    w.once('error', (err) => {
      clearInterval(watchdog);
      const i = Atomics.load(progress, 0);
      resolve({
        target: job.target,
        execs: i,
        expectedErrors: 0,
        findings: [
          { target: job.target, seed: job.seed, iteration: i, kind: /heap|memory/i.test(err.message) ? 'memory' : 'crash', message: String(err.stack ?? err) },
        ],
        ms: 0,
      });
    });
  });
}

if (!isMainThread) {
  const job = workerData as Job;
  const t = targets.find((x) => x.name === job.target)!;
  const r = await runTarget(t, {
    seed: job.seed,
    budgetMs: job.seconds * 1000,
    capMs: job.capMs,
    progress: new Int32Array(job.progress),
    stopOnFinding: false,
  });
  parentPort!.postMessage(r);
} else {
  const seconds = Number(arg('seconds', '10'));
  const seed = Number(arg('seed', String(Date.now() % 2 ** 31)));
  const only = arg('target', '');
  const capMs = Number(arg('cap-ms', '2000'));
  const chosen = targets.filter((t) => !only || t.name === only);
  if (chosen.length === 0) {
    console.error(`no target ${only}; targets: ${targets.map((t) => t.name).join(', ')}`);
    process.exit(2);
  }
  console.log(`fuzz: seed ${seed}, ${seconds} s per target, ${capMs} ms per input`);
  let bad = 0;
  for (const t of chosen) {
    const r = await inWorker({ target: t.name, seed, seconds, capMs, progress: new SharedArrayBuffer(4) });
    console.log(`${t.name}: ${r.execs} executions (${r.expectedErrors} rejected as invalid), ${r.findings.length} findings`);
    const seen = new Set<string>();
    for (const f of r.findings) {
      const key = f.message.split('\n').slice(0, 2).join('\n');
      if (seen.has(key)) continue;
      seen.add(key);
      bad++;
      console.log(`  [${f.kind}] seed ${f.seed} iteration ${f.iteration}: ${f.message}`);
    }
  }
  process.exit(bad > 0 ? 1 : 0);
}
