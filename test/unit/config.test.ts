import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { loadConfig, validateConfig } from '../../src/daemon/config.js';

test('config: embedded defaults are a complete config', () => {
  const c = loadConfig();
  assert.equal(c.root, '/var/lib/berth');
  assert.equal(c.state, '/run/berth');
  assert.equal(c.socket, '/run/berth/berth.sock');
  assert.equal(c.sandbox_image, 'registry.k8s.io/pause:3.9');
  assert.deepEqual(c.cni.bin_dirs, ['/usr/lib/cni', '/opt/cni/bin']);
  assert.equal(c.cni.conf_dir, '/etc/cni/net.d');
  assert.ok(c.runtimes.berth);
});

test('config: the documented TOML keys parse', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-cfg-'));
  try {
    const f = join(dir, 'berth.toml');
    writeFileSync(
      f,
      `root = "/tmp/r"\nstate = "/tmp/s"\nsocket = "/tmp/s/b.sock"\nsandbox_image = "registry.k8s.io/pause:3.9"\n` +
        `[cni]\nbin_dirs = ["/usr/lib/cni"]\nconf_dir = "/etc/cni/net.d"\n` +
        `[registry.mirrors."registry.k8s.io"]\nendpoints = ["http://127.0.0.1:5000"]\n`,
    );
    const c = loadConfig(f);
    assert.equal(c.root, '/tmp/r');
    assert.deepEqual(c.registry.mirrors['registry.k8s.io'], { endpoints: ['http://127.0.0.1:5000'] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('config: unknown keys are reported by name', () => {
  assert.throws(() => validateConfig({ rooot: '/x' }), /unknown key "rooot"/);
  assert.throws(() => validateConfig({ cni: { bin_dir: ['/x'] } }), /unknown key "cni\.bin_dir"/);
});

test('config: bad values are reported by key', () => {
  assert.throws(() => validateConfig({ root: 'relative' }), /root: must be an absolute path/);
  assert.throws(() => validateConfig({ registry: { mirrors: { 'docker.io': { endpoints: ['ftp://x'] } } } }), /registry\.mirrors\.docker\.io\.endpoints\.0/);
  assert.throws(() => validateConfig({ default_runtime: 'nope' }), /default_runtime/);
});

test('config: a TOML syntax error names the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-cfg-'));
  try {
    const f = join(dir, 'bad.toml');
    writeFileSync(f, 'root = \n');
    assert.throws(() => loadConfig(f), (e: Error) => e.message.includes(f));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('config: [cdi] spec_dirs defaults to /etc/cdi then /var/run/cdi; entries must be absolute', () => {
  assert.deepEqual(loadConfig().cdi.spec_dirs, ['/etc/cdi', '/var/run/cdi']);
  assert.deepEqual(validateConfig({ cdi: { spec_dirs: ['/a', '/b'] } }).cdi.spec_dirs, ['/a', '/b']);
  assert.throws(() => validateConfig({ cdi: { spec_dirs: ['etc/cdi'] } }), /cdi\.spec_dirs\.0: must be an absolute path/);
  assert.throws(() => validateConfig({ cdi: { dirs: ['/x'] } }), /unknown key "cdi\.dirs"/);
  assert.throws(() => validateConfig({ cdi: { spec_dirs: ['/etc/cdi', '/etc/cdi/'] } }), /cdi\.spec_dirs: lists a directory twice/);
});
