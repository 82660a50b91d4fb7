/** berthd's Prometheus endpoint: bound address published, valid exposition, RPC histograms after calls. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBerthd, type TestBerthd } from '../helpers/berthd.js';

let d: TestBerthd;

before(async () => {
  d = await startBerthd();
});

after(async () => {
  await d?.cleanup();
});

const SAMPLE_LINE = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (NaN|[+-]Inf|-?[0-9.e+-]+)$/;

test('the metrics endpoint serves valid exposition text with RPC latency by method and code', async () => {
  const address = readFileSync(join(d.state, 'metrics.addr'), 'utf8').trim();
  assert.match(address, /^127\.0\.0\.1:\d+$/);
  // The harness's readiness probe already called Version: count from what is there now.
  const versionCount = async (): Promise<number> => {
    const m = /^berth_rpc_duration_seconds_count\{method="runtime\.v1\.RuntimeService\/Version",code="OK"\} (\d+)$/m.exec(
      await (await fetch(`http://${address}/metrics`)).text(),
    );
    return m ? Number(m[1]) : 0;
  };
  const before = await versionCount();
  await d.cri.runtime.version({});
  await d.cri.runtime.containerStatus({ containerId: 'missing' }).catch(() => undefined);
  const res = await fetch(`http://${address}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  for (const line of text.trimEnd().split('\n')) if (!line.startsWith('#')) assert.match(line, SAMPLE_LINE);
  assert.match(text, /^# TYPE berth_rpc_duration_seconds histogram$/m);
  assert.match(text, new RegExp(`^berth_rpc_duration_seconds_count\\{method="runtime\\.v1\\.RuntimeService/Version",code="OK"\\} ${before + 1}$`, 'm'));
  assert.match(text, /^berth_rpc_duration_seconds_bucket\{method="runtime\.v1\.RuntimeService\/ContainerStatus",code="NOT_FOUND",le="\+Inf"\} 1$/m);
  assert.match(text, /^berth_pods\{state="ready"\} 0$/m);
  assert.match(text, /^berth_containers\{state="running"\} 0$/m);
  assert.match(text, /^berth_shims \d+$/m);
});

test('a pull berthd refuses is counted as a failed pull (the image service reports pulls on its diagnostics channel)', async () => {
  const address = readFileSync(join(d.state, 'metrics.addr'), 'utf8').trim();
  const failures = async (): Promise<number> => {
    const m = /^berth_image_pulls_total\{result="failure"\} (\d+)$/m.exec(await (await fetch(`http://${address}/metrics`)).text());
    return m ? Number(m[1]) : 0;
  };
  const before = await failures();
  await assert.rejects(d.cri.image.pullImage({ image: { image: 'Bad:Ref!' } }), (e: { code?: number }) => e.code === 3);
  assert.equal(await failures(), before + 1);
});
