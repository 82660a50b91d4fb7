/**
 * Pod start path cost of the shim: time of TaskManager.create for the FIRST container of a new
 * pod (new group → a shim must be found), for
 *   - berth-shim, cold: `containerd-shim-berth-v1 start` boots a Node server (the naive path);
 *   - berth-shim, warm: a pre-spawned shim is adopted (one rename, connection already open);
 *   - containerd-shim-runc-v2 (Go), cold, for comparison.
 * Each sample creates a container in a fresh pod, then kills/deletes it (not timed).
 *   npx tsx bench/shim-start.ts [--runs N]      (root, runc, busybox-static)
 */
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { RuntimeHarness } from '../test/helpers/containerd.js';
import type { TaskManager } from '../src/runtime/index.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '8' } } });
const runs = Number(values.runs);

interface Row {
  name: string;
  samples: number[];
}

async function measure(h: RuntimeHarness, tm: TaskManager, name: string, runtime: 'berth' | 'runc', warm: boolean): Promise<Row> {
  const samples: number[] = [];
  for (let i = 0; i < runs + 1; i++) {
    if (warm) await tm.warmReady();
    const id = `${name.replace(/[^a-z0-9]+/gi, '-').replace(/-+$/, '')}-${i}`;
    const c = h.container(id, ['sleep', '1000'], { 'io.kubernetes.cri.sandbox-id': `pod-${id}` });
    const t0 = performance.now();
    await tm.create({ namespace: h.ns, id, spec: c.spec, rootfs: c.rootfs, runtime });
    const dt = performance.now() - t0;
    if (i > 0) samples.push(dt); // first sample warms caches (runc binary, node modules)
    await tm.delete(h.ns, id);
  }
  return { name, samples };
}

function stats(r: Row): string {
  const s = [...r.samples].sort((a, b) => a - b);
  const med = s[Math.floor(s.length / 2)] ?? 0;
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return `${r.name.padEnd(34)} median ${med.toFixed(1).padStart(7)} ms   mean ${mean.toFixed(1).padStart(7)} ms   min ${(s[0] ?? 0).toFixed(1).padStart(7)} ms   max ${(s.at(-1) ?? 0).toFixed(1).padStart(7)} ms`;
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  {
    const h = new RuntimeHarness();
    try {
      const tm = h.manager();
      await tm.init();
      rows.push(await measure(h, tm, 'berth-shim cold (exec start)', 'berth', false));
      rows.push(await measure(h, tm, 'containerd-shim-runc-v2 cold', 'runc', false));
    } finally {
      await h.cleanup();
    }
  }
  {
    const h = new RuntimeHarness();
    try {
      const tm = h.manager({ warm: { namespaces: [h.ns], size: 1 } });
      await tm.init();
      rows.push(await measure(h, tm, 'berth-shim warm (adopt)', 'berth', true));
    } finally {
      await h.cleanup();
    }
  }
  process.stdout.write(`TaskManager.create, first container of a new pod (${runs} runs each; includes runc create)\n`);
  for (const r of rows) process.stdout.write(stats(r) + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
