import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, compareVersions, loadConfigDir, parseConfigList, parseSingleConfig } from '../../src/network/cni-config.js';

async function withConfDir(files: Record<string, string>, fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-cniconf-'));
  try {
    for (const [n, body] of Object.entries(files)) await writeFile(join(dir, n), body);
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const list = (name: string, extra: object = {}) =>
  JSON.stringify({ cniVersion: '1.0.0', name, plugins: [{ type: 'bridge' }, { type: 'portmap', capabilities: { portMappings: true } }], ...extra });

test('the first config file in lexical order is the default network, other extensions are ignored', async () => {
  await withConfDir(
    {
      '20-b.conflist': list('b'),
      '10-a.conflist': list('a'),
      '05-notes.txt': 'not a config',
      '00-z.conf.bak': list('bak'),
    },
    async (dir) => {
      const { network, rejected } = await loadConfigDir(dir);
      assert.equal(network?.name, 'a');
      assert.equal(network?.source, join(dir, '10-a.conflist'));
      assert.deepEqual(
        network?.plugins.map((p) => p.type),
        ['bridge', 'portmap'],
      );
      assert.deepEqual(rejected, []);
    },
  );
});

test('a single-plugin .conf is wrapped into a one-plugin list', async () => {
  await withConfDir({ '10-single.conf': JSON.stringify({ cniVersion: '0.4.0', name: 'single', type: 'bridge', bridge: 'cni0' }) }, async (dir) => {
    const { network } = await loadConfigDir(dir);
    assert.equal(network?.name, 'single');
    assert.equal(network?.cniVersion, '0.4.0');
    assert.equal(network?.plugins.length, 1);
    assert.equal(network?.plugins[0]?.['bridge'], 'cni0');
  });
});

test('invalid files are skipped with a reason naming the file, and the next valid one is used', async () => {
  await withConfDir(
    {
      '01-json.conflist': '{not json',
      '02-noversion.conflist': JSON.stringify({ name: 'x', plugins: [{ type: 'bridge' }] }),
      '03-empty.conflist': JSON.stringify({ cniVersion: '1.0.0', name: 'x', plugins: [] }),
      '04-good.json': list('good'),
    },
    async (dir) => {
      const { network, rejected } = await loadConfigDir(dir);
      assert.equal(network?.name, 'good');
      assert.equal(rejected.length, 3);
      assert.match(rejected[0] ?? '', /01-json\.conflist: invalid JSON/);
      assert.match(rejected[1] ?? '', /02-noversion\.conflist: cniVersion is missing/);
      assert.match(rejected[2] ?? '', /03-empty\.conflist: plugins is empty/);
    },
  );
});

test('a missing conf dir or a dir without configs yields no network', async () => {
  assert.deepEqual(await loadConfigDir('/nonexistent/berth/net.d'), { rejected: [] });
  await withConfDir({}, async (dir) => {
    await mkdir(join(dir, 'sub.conflist'));
    assert.deepEqual(await loadConfigDir(dir), { rejected: [] });
  });
});

test('config validation rejects unknown versions, bad names and plugin types that are paths', () => {
  assert.throws(
    () => parseConfigList(list('n', { cniVersion: '9.9.9' }), 'f'),
    (e: unknown) => e instanceof ConfigError && /9\.9\.9.*not a known/.test(e.message),
  );
  assert.throws(() => parseConfigList(list('bad name'), 'f'), /network name "bad name" has invalid characters/);
  assert.throws(
    () => parseConfigList(JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: '../../bin/sh' }] }), 'f'),
    /plugins\[0\] type .* not a plain file name/,
  );
  assert.throws(() => parseConfigList(JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{}] }), 'f'), /plugins\[0\] has no type/);
  assert.throws(() => parseSingleConfig(JSON.stringify({ cniVersion: '1.0.0', name: 'n' }), 'f.conf'), /f\.conf: plugins\[0\] has no type/);
  assert.throws(() => parseConfigList('[]', 'f'), /top level is not a JSON object/);
});

test('disableCheck accepts true as boolean or string', () => {
  assert.equal(parseConfigList(list('n', { disableCheck: true })).disableCheck, true);
  assert.equal(parseConfigList(list('n', { disableCheck: 'true' })).disableCheck, true);
  assert.equal(parseConfigList(list('n')).disableCheck, false);
});

test('versions compare numerically', () => {
  assert.equal(compareVersions('0.4.0', '1.0.0'), -1);
  assert.equal(compareVersions('1.1.0', '1.0.0'), 1);
  assert.equal(compareVersions('0.10.0', '0.4.0'), 1);
  assert.equal(compareVersions('1.0.0', '1.0.0'), 0);
});
