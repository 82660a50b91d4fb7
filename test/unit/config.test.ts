import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { loadConfig, parseDuration, validateConfig } from '../../src/daemon/config.js';

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
    assert.throws(
      () => loadConfig(f),
      (e: Error) => e.message.includes(f),
    );
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

test("config: [streaming] limits default to kubelet's timeouts; durations are Go-style and checked by key", () => {
  const c = validateConfig({});
  assert.equal(c.streaming.idle_timeout, '4h');
  assert.equal(c.streaming.stream_creation_timeout, '30s');
  assert.equal(c.streaming.max_connections, 256);
  assert.equal(c.streaming.max_streams_per_connection, 128);
  assert.equal(parseDuration('4h'), 4 * 3600_000);
  assert.equal(parseDuration('1h30m'), 5400_000);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('0'), 0);
  assert.ok(Number.isNaN(parseDuration('4 hours')));
  assert.ok(Number.isNaN(parseDuration('')));
  assert.ok(Number.isNaN(parseDuration('10')));
  assert.throws(() => validateConfig({ streaming: { idle_timeout: '4 hours' } }), /streaming\.idle_timeout: must be a duration/);
  assert.throws(() => validateConfig({ streaming: { stream_creation_timeout: '0' } }), /streaming\.stream_creation_timeout: must be more than 0/);
  assert.throws(() => validateConfig({ streaming: { idle_timeout: '1000h' } }), /streaming\.idle_timeout: must be at most 596h/);
  assert.throws(() => validateConfig({ streaming: { max_connections: 0 } }), /streaming\.max_connections/);
  assert.throws(() => validateConfig({ streaming: { max_streams_per_connection: 2 } }), /streaming\.max_streams_per_connection/);
  assert.equal(validateConfig({ streaming: { idle_timeout: '0' } }).streaming.idle_timeout, '0');
});
