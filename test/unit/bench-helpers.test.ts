import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { benchContainerdConfig, lastTableRows, parseSmapsRollup, percentile, ratio, writeSection } from '../../bench/cri-common.js';
import { POD_STEPS, summarize, type Cycle } from '../../bench/pod.js';

test('percentile uses the nearest rank and ignores input order', () => {
  const xs = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5];
  assert.equal(percentile(xs, 90), 9);
  assert.equal(percentile(xs, 50), 5);
  assert.equal(percentile(xs, 100), 10);
  assert.equal(percentile(xs, 0), 1);
  assert.equal(percentile([42], 90), 42);
  assert.ok(Number.isNaN(percentile([], 90)));
});

test('ratio is undefined when a side is missing or the denominator is not positive', () => {
  assert.equal(ratio(1, 4), 0.25);
  assert.equal(ratio(undefined, 4), undefined);
  assert.equal(ratio(1, 0), undefined);
  assert.equal(ratio(1, NaN), undefined);
});

test('parseSmapsRollup reads Pss, Pss_Anon, Pss_File and Rss in KiB', () => {
  const text = `55d0c0a6b000-7ffc5a1e3000 ---p 00000000 00:00 0                          [rollup]
Rss:               12345 kB
Pss:                6789 kB
Pss_Dirty:          1000 kB
Pss_Anon:           4000 kB
Pss_File:           2789 kB
Pss_Shmem:             0 kB
Shared_Clean:       5000 kB
`;
  assert.deepEqual(parseSmapsRollup(text), { pssKiB: 6789, pssAnonKiB: 4000, pssFileKiB: 2789, rssKiB: 12345 });
  // Pss_Dirty must not be mistaken for Pss.
  assert.equal(parseSmapsRollup('Pss_Dirty:   7 kB\n').pssKiB, 0);
});

test('summarize gives per-step medians and the start path over whole cycles', () => {
  const cycle = (k: number): Cycle => Object.fromEntries(POD_STEPS.map((s, i) => [s, k * (i + 1)])) as Cycle;
  const st = summarize([cycle(1), cycle(3), cycle(2)], 1, 'boom');
  assert.equal(st.cycles, 3);
  assert.equal(st.failures, 1);
  assert.equal(st.steps.RunPodSandbox?.median, 2);
  assert.equal(st.steps.RemovePodSandbox?.median, 14);
  assert.equal(st.steps.RunPodSandbox?.p90, 3);
  // start path = Run + Create + Start = k * (1 + 2 + 3)
  assert.equal(st.startPath?.median, 12);
  assert.equal(st.total?.median, 2 * 28);
  assert.equal(summarize([], 0).startPath, undefined);
});

test('writeSection replaces the section body and keeps appending history rows', () => {
  const root = mkdtempSync(join(tmpdir(), 'bench-md-'));
  try {
    writeFileSync(join(root, 'BENCHMARKS.md'), '# Benchmarks\n\n<!-- bench:pull:start -->\npull stays\n<!-- bench:pull:end -->\n');
    const head = '| date | x |\n| --- | --- |';
    writeSection(root, 'pod', '## Pod\n\nfirst body\n\n| a | b |\n| --- | --- |\n| 1 | 2 |', head, '| d1 | 1 |');
    writeSection(root, 'pod', '## Pod\n\nsecond body', head, '| d2 | 2 |');
    const text = readFileSync(join(root, 'BENCHMARKS.md'), 'utf8');
    assert.match(text, /pull stays/);
    assert.doesNotMatch(text, /first body/);
    assert.match(text, /second body/);
    assert.equal(text.split('<!-- bench:pod:start -->').length, 2);
    const section = text.slice(text.indexOf('<!-- bench:pod:start -->'), text.indexOf('<!-- bench:pod:end -->'));
    assert.deepEqual(lastTableRows(section), ['| d1 | 1 |', '| d2 | 2 |']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the bench containerd config is valid TOML that restricts oom_score_adj and keeps runc state private', () => {
  const cfg = parseToml(benchContainerdConfig('/tmp/x', '127.0.0.1:5000')) as {
    plugins: Record<string, { restrict_oom_score_adj?: boolean; containerd?: { runtimes?: Record<string, { options?: { Root?: string } }> } }>;
  };
  const cri = cfg.plugins['io.containerd.grpc.v1.cri'];
  assert.equal(cri?.restrict_oom_score_adj, true);
  assert.equal(cri?.containerd?.runtimes?.runc?.options?.Root, '/tmp/x/runc');
});
