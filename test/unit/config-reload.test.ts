import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseToml, stringify } from 'smol-toml';
import { loadConfig, validateConfig, type Config } from '../../src/daemon/config.js';
import { renderDefaultConfig } from '../../src/daemon/config-template.js';
import { changedKeys, planReload, RELOADABLE_KEYS } from '../../src/daemon/reload.js';
import { redactedConfig } from '../../src/daemon/services.js';

const defaults = (): Config => validateConfig({});
const cfg = (raw: Record<string, unknown>): Config => validateConfig(raw);

test('default config file: parses to exactly the embedded defaults and shows every scalar default', () => {
  const text = renderDefaultConfig();
  assert.deepEqual(validateConfig(parseToml(text)), defaults());
  const d = defaults() as unknown as Record<string, unknown>;
  const leaves: Array<[string, unknown]> = [];
  for (const [k, v] of Object.entries(d)) {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k2, v2] of Object.entries(v as Record<string, unknown>)) if (!(v2 && typeof v2 === 'object' && !Array.isArray(v2))) leaves.push([k2, v2]);
    } else leaves.push([k, v]);
  }
  assert.ok(leaves.length >= 14);
  for (const [k, v] of leaves) assert.ok(text.includes(`# ${stringify({ [k]: v }).trim()}\n`), `${k} shown with its default`);
  // Uncommenting every "# key = value" line still gives the defaults (the shown values are the real ones).
  const uncommented = text.replace(/^# ([a-z_]+ = .*)$/gm, (line, kv: string) =>
    /^(type|binary|pod_annotations|endpoints|username|password) =/.test(kv) ? line : kv,
  );
  assert.deepEqual(validateConfig(parseToml(uncommented)), defaults());
  assert.match(text, /SIGHUP/);
  for (const k of RELOADABLE_KEYS) assert.ok(text.includes(k), `reloadable key ${k} listed`);
});

test('changedKeys: sections by key, maps as one key, runtimes per handler, TOML key order is no change', () => {
  const a = cfg({ registry: { mirrors: { 'docker.io': { endpoints: ['https://a.example'] }, 'quay.io': { endpoints: ['https://q.example'] } } } });
  const b = cfg({ registry: { mirrors: { 'quay.io': { endpoints: ['https://q.example'] }, 'docker.io': { endpoints: ['https://a.example'] } } } });
  assert.deepEqual(changedKeys(a, b), []);
  const c = cfg({
    root: '/x',
    cni: { conf_dir: '/y' },
    runtimes: { runc: { type: 'io.containerd.runc.v2' } },
    registry: { mirrors: { 'docker.io': { endpoints: ['https://b.example'] } } },
  });
  assert.deepEqual(changedKeys(a, c), ['cni.conf_dir', 'registry.mirrors', 'root', 'runtimes.runc']);
});

test('planReload: reloadable keys applied, the others named and kept at their running values', () => {
  const running = defaults();
  const loaded = cfg({
    root: '/elsewhere',
    socket: '/run/x.sock',
    log_level: 'debug',
    shim: { group: 'node' },
    metrics: { address: '127.0.0.1:9999' },
    registry: { mirrors: { 'docker.io': { endpoints: ['https://m.example'] } }, credentials: { 'm.example': { username: 'u', password: 'p' } } },
  });
  const plan = planReload(running, loaded);
  assert.deepEqual(plan.apply, ['log_level', 'metrics.address', 'registry.credentials', 'registry.mirrors']);
  assert.deepEqual(plan.restart, ['root', 'shim.group', 'socket']);
  assert.equal(plan.next.root, '/var/lib/berth');
  assert.equal(plan.next.socket, '/run/berth/berth.sock');
  assert.equal(plan.next.shim.group, 'pod');
  assert.equal(plan.next.log_level, 'debug');
  assert.equal(plan.next.metrics.address, '127.0.0.1:9999');
  assert.deepEqual(plan.next.registry.mirrors, { 'docker.io': { endpoints: ['https://m.example'] } });
  assert.equal(running.log_level, 'info', 'the running config object is not changed');
  // A key fixed on the command line (--log-level) is neither applied nor a restart.
  const pinned = planReload(running, loaded, new Set(['log_level']));
  assert.ok(!pinned.apply.includes('log_level') && !pinned.restart.includes('log_level'));
  assert.equal(pinned.next.log_level, 'info');
});

test('registry.credentials: validated by key; redacted in what berth info shows', () => {
  assert.throws(() => cfg({ registry: { credentials: { 'r.example': {} } } }), /registry\.credentials\.r\.example: needs username/);
  assert.throws(() => cfg({ registry: { credentials: { 'r.example': { password: 'p' } } } }), /registry\.credentials\.r\.example/);
  assert.throws(() => cfg({ registry: { credentials: { 'r.example': { user: 'x' } } } }), /unknown key "registry\.credentials\.r\.example\.user"/);
  const c = cfg({ registry: { credentials: { 'r.example': { username: 'u', password: 'hunter2' }, 't.example': { identity_token: 'tok-123' } } } });
  const shown = JSON.stringify(redactedConfig(c));
  assert.ok(shown.includes('r.example') && shown.includes('t.example'));
  assert.ok(!shown.includes('hunter2') && !shown.includes('tok-123'));
  assert.equal(c.registry.credentials['r.example']?.password, 'hunter2', 'the running config keeps them');
});

test("a TOML syntax error names file, line and column, but never echoes the file's lines (they may hold a password)", () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-cfg-'));
  try {
    const f = join(dir, 'berth.toml');
    writeFileSync(f, '[registry.credentials."r.example"]\nusername = "u"\npassword = "hunter2\nlog_level = "info"\n');
    assert.throws(
      () => loadConfig(f),
      (e: Error) => e.message.startsWith(`${f}: line 3, column `) && !e.message.includes('hunter2') && !e.message.includes('\n'),
    );
    writeFileSync(f, 'password = hunter2\n');
    assert.throws(
      () => loadConfig(f),
      (e: Error) => /line 1, column \d+: invalid value$/.test(e.message) && !e.message.includes('hunter2'),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('planReload: cdi.spec_dirs is applied at run time', () => {
  const plan = planReload(defaults(), cfg({ cdi: { spec_dirs: ['/srv/cdi'] } }));
  assert.deepEqual(plan.apply, ['cdi.spec_dirs']);
  assert.deepEqual(plan.next.cdi.spec_dirs, ['/srv/cdi']);
});
