import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniManager, CniPluginError } from '../../src/network/index.js';
import { isBerthError } from '../../src/errors.js';
import { logger, setLogSink } from '../../src/log.js';
import { clearCalls, installFakePlugin, readCalls } from '../helpers/netns.js';

interface Env {
  confDir: string;
  binDir: string;
  cacheDir: string;
  mgr: CniManager;
  writeList(plugins: object[], extra?: object): Promise<void>;
}

async function withEnv(fn: (env: Env) => Promise<void>, opts: { timeoutMs?: number } = {}): Promise<void> {
  const base = await mkdtemp(join(tmpdir(), 'berth-cni-unit-'));
  const env: Env = {
    confDir: join(base, 'net.d'),
    binDir: join(base, 'bin'),
    cacheDir: join(base, 'cache'),
    mgr: undefined as unknown as CniManager,
    async writeList(plugins, extra = {}) {
      await writeFile(join(env.confDir, '10-test.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'testnet', plugins, ...extra }));
    },
  };
  await mkdir(env.confDir);
  await mkdir(env.binDir);
  for (const n of ['alpha', 'beta', 'gamma']) await installFakePlugin(env.binDir, n);
  // A second bin dir that is searched first but lacks the plugins: lookup must fall through.
  const emptyBin = join(base, 'empty-bin');
  await mkdir(emptyBin);
  env.mgr = new CniManager({
    confDir: env.confDir,
    binDirs: [emptyBin, env.binDir],
    cacheDir: env.cacheDir,
    logger: logger(),
    pluginTimeoutMs: opts.timeoutMs ?? 10_000,
  });
  try {
    await fn(env);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

async function cached(e: Env): Promise<string[]> {
  return readdir(join(e.cacheDir, 'results')).catch(() => []);
}

const pod = { id: 'sandbox1', netnsPath: '/nonexistent/netns/sandbox1', podName: 'web', podNamespace: 'prod', podUid: 'uid-9' };

test('ADD runs the chain in order with env, prevResult chaining and capability-gated runtimeConfig', async () => {
  await withEnv(async (e) => {
    await e.writeList([{ type: 'alpha' }, { type: 'beta', capabilities: { portMappings: true } }, { type: 'gamma' }]);
    process.env['CNI_COMMAND'] = 'LEAK';
    let r;
    try {
      r = await e.mgr.setupPod({
        ...pod,
        portMappings: [
          { protocol: 'TCP', containerPort: 80, hostPort: 8080 },
          { protocol: 'TCP', containerPort: 81, hostPort: 0 },
        ],
      });
    } finally {
      delete process.env['CNI_COMMAND'];
    }
    assert.deepEqual(r.ips, ['198.18.0.5']);
    assert.equal(r.network, 'testnet');
    assert.deepEqual(
      r.spans.map((s) => `${s.plugin}:${s.command}`),
      ['alpha:ADD', 'beta:ADD', 'gamma:ADD'],
    );
    const calls = await readCalls(e.binDir);
    assert.deepEqual(
      calls.map((c) => c.plugin),
      ['alpha', 'beta', 'gamma'],
    );
    const [a, b, g] = calls;
    assert.deepEqual(a?.env, {
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: 'sandbox1',
      CNI_NETNS: pod.netnsPath,
      CNI_IFNAME: 'eth0',
      CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=sandbox1;K8S_POD_UID=uid-9',
      CNI_PATH: `${join(e.binDir, '..', 'empty-bin')}:${e.binDir}`,
    });
    assert.equal(a?.conf['name'], 'testnet');
    assert.equal(a?.conf['cniVersion'], '1.0.0');
    assert.equal('prevResult' in (a?.conf ?? {}), false);
    assert.equal('runtimeConfig' in (a?.conf ?? {}), false);
    assert.deepEqual((b?.conf['prevResult'] as { ips: unknown[] }).ips, [{ address: '198.18.0.5/24', gateway: '198.18.0.1', interface: 1 }]);
    assert.deepEqual(b?.conf['runtimeConfig'], { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] });
    assert.equal('runtimeConfig' in (g?.conf ?? {}), false);
    assert.deepEqual(await readdir(join(e.cacheDir, 'results')), ['testnet-sandbox1-eth0']);
  });
});

test('DEL runs in reverse with the cached result and config, even after conf_dir changed', async () => {
  await withEnv(async (e) => {
    await e.writeList([
      { type: 'alpha', fake: { result: { cniVersion: '1.0.0', ips: [{ address: '198.18.7.7/24' }] } } },
      { type: 'beta', capabilities: { portMappings: true } },
    ]);
    await e.mgr.setupPod({ ...pod, portMappings: [{ protocol: 'UDP', containerPort: 53, hostPort: 5353 }] });
    await rm(join(e.confDir, '10-test.conflist'));
    await clearCalls(e.binDir);
    const { spans } = await e.mgr.teardownPod({ id: pod.id, netnsPath: pod.netnsPath });
    assert.deepEqual(
      spans.map((s) => `${s.plugin}:${s.command}:${s.ok}`),
      ['beta:DEL:true', 'alpha:DEL:true'],
    );
    const calls = await readCalls(e.binDir);
    assert.deepEqual(
      calls.map((c) => c.plugin),
      ['beta', 'alpha'],
    );
    for (const c of calls) {
      assert.equal(c.env['CNI_COMMAND'], 'DEL');
      // The netns path does not exist any more: plugins get an empty CNI_NETNS.
      assert.equal(c.env['CNI_NETNS'], '');
      assert.deepEqual(c.conf['prevResult'], { cniVersion: '1.0.0', ips: [{ address: '198.18.7.7/24' }] });
    }
    assert.deepEqual(calls[0]?.conf['runtimeConfig'], { portMappings: [{ hostPort: 5353, containerPort: 53, protocol: 'udp' }] });
    assert.deepEqual(await readdir(join(e.cacheDir, 'results')), []);
    // Idempotent: no cache and no config → nothing to call, success.
    await clearCalls(e.binDir);
    await e.mgr.teardownPod({ id: pod.id, netnsPath: pod.netnsPath });
    assert.deepEqual(await readCalls(e.binDir), []);
  });
});

test('a failed ADD rolls back with DEL on every plugin in reverse, including ones never reached', async () => {
  await withEnv(async (e) => {
    await e.writeList([
      { type: 'alpha' },
      { type: 'beta', fake: { failOn: 'ADD', error: { code: 11, msg: 'try later', details: 'ipam busy' } } },
      { type: 'gamma' },
    ]);
    await assert.rejects(e.mgr.setupPod(pod), (err: unknown) => {
      assert.ok(err instanceof CniPluginError);
      assert.equal(err.kind, 'Unavailable');
      assert.equal(err.message, 'CNI plugin beta (network testnet) ADD failed: try later: ipam busy (code 11)');
      return true;
    });
    const calls = await readCalls(e.binDir);
    assert.deepEqual(
      calls.map((c) => `${c.plugin}:${c.env['CNI_COMMAND']}`),
      ['alpha:ADD', 'beta:ADD', 'gamma:DEL', 'beta:DEL', 'alpha:DEL'],
    );
    assert.deepEqual(await cached(e), [], 'nothing cached for a failed ADD');
  });
});

test('DEL stops at the first failing plugin and keeps the cache so a retry repeats it', async () => {
  await withEnv(async (e) => {
    await e.writeList([{ type: 'alpha' }, { type: 'beta', fake: { failOn: 'DEL', raw: 'garbage' } }, { type: 'gamma' }]);
    await e.mgr.setupPod(pod);
    await clearCalls(e.binDir);
    await assert.rejects(e.mgr.teardownPod({ id: pod.id, netnsPath: pod.netnsPath }), /beta \(network testnet\) DEL failed: fake stderr from beta/);
    assert.deepEqual(
      (await readCalls(e.binDir)).map((c) => c.plugin),
      ['gamma', 'beta'],
    );
    assert.deepEqual(await readdir(join(e.cacheDir, 'results')), ['testnet-sandbox1-eth0']);
  });
});

test('a plugin that hangs is killed after the timeout with DeadlineExceeded', async () => {
  await withEnv(
    async (e) => {
      await e.writeList([{ type: 'alpha', fake: { sleepMs: 30_000 } }]);
      // The plugin would sleep 30 s: the error names the 300 ms timeout that cut it off.
      await assert.rejects(e.mgr.setupPod(pod), (err: unknown) => isBerthError(err, 'DeadlineExceeded') && /alpha.*timed out after 300 ms/.test(err.message));
    },
    { timeoutMs: 300 },
  );
});

test('ADD output that is not a result fails and rolls back', async () => {
  await withEnv(async (e) => {
    await e.writeList([{ type: 'alpha', fake: { result: { cniVersion: '1.0.0', ips: [{ address: '198.18.0.2/24', interface: 4 }] } } }]);
    await assert.rejects(e.mgr.setupPod(pod), /invalid CNI result: ip 198\.18\.0\.2\/24 names interface index 4/);
    assert.deepEqual(
      (await readCalls(e.binDir)).map((c) => c.env['CNI_COMMAND']),
      ['ADD', 'DEL'],
    );
  });
});

test('status is NetworkPluginNotReady until a valid config appears, and names a missing plugin', async () => {
  await withEnv(async (e) => {
    const lines: string[] = [];
    setLogSink((l) => lines.push(l));
    try {
      const st = await e.mgr.status();
      assert.equal(st.ready, false);
      assert.equal(st.reason, 'NetworkPluginNotReady');
      assert.match(st.message ?? '', /^cni config uninitialized/);
      await assert.rejects(e.mgr.setupPod(pod), (err: unknown) => isBerthError(err, 'FailedPrecondition'));

      await e.writeList([{ type: 'alpha', ipam: { type: 'missing-ipam' } }]);
      const st2 = await e.mgr.status();
      assert.equal(st2.ready, false);
      assert.match(st2.message ?? '', /"missing-ipam" not found/);

      await e.writeList([{ type: 'alpha' }, { type: 'beta' }]);
      assert.deepEqual(await e.mgr.status(), { ready: true, network: 'testnet' });
    } finally {
      setLogSink((l) => process.stderr.write(l + '\n'));
    }
  });
});

test('for cniVersion 1.1.0 status asks each plugin with STATUS and reports its error', async () => {
  await withEnv(async (e) => {
    await e.writeList([{ type: 'alpha' }, { type: 'beta', fake: { failOn: 'STATUS', error: { code: 50, msg: 'plugin not available' } } }], {
      cniVersion: '1.1.0',
    });
    const st = await e.mgr.status();
    assert.equal(st.ready, false);
    assert.match(st.message ?? '', /beta .* STATUS failed: plugin not available \(code 50\)/);
    assert.deepEqual(
      (await readCalls(e.binDir)).map((c) => `${c.plugin}:${c.env['CNI_COMMAND']}`),
      ['alpha:STATUS', 'beta:STATUS'],
    );
  });
});

test('CHECK passes the cached result to each plugin in order', async () => {
  await withEnv(async (e) => {
    await e.writeList([{ type: 'alpha' }, { type: 'beta' }]);
    await e.mgr.setupPod(pod);
    await clearCalls(e.binDir);
    await e.mgr.checkPod({ id: pod.id, netnsPath: pod.netnsPath });
    const calls = await readCalls(e.binDir);
    assert.deepEqual(
      calls.map((c) => `${c.plugin}:${c.env['CNI_COMMAND']}`),
      ['alpha:CHECK', 'beta:CHECK'],
    );
    assert.ok(calls.every((c) => c.conf['prevResult'] !== undefined));
    await assert.rejects(e.mgr.checkPod({ id: 'other', netnsPath: pod.netnsPath }), (err: unknown) => isBerthError(err, 'NotFound'));
  });
});

test('sandbox ids that are not plain identifiers are refused before any plugin runs', async () => {
  await withEnv(async (e) => {
    await e.writeList([{ type: 'alpha' }]);
    await assert.rejects(e.mgr.setupPod({ ...pod, id: '../../etc' }), (err: unknown) => isBerthError(err, 'InvalidArgument'));
    await assert.rejects(e.mgr.setupPod({ ...pod, podName: 'a;IP=198.18.0.9' }), (err: unknown) => isBerthError(err, 'InvalidArgument'));
    assert.deepEqual(await readCalls(e.binDir), []);
  });
});
