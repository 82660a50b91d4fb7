/** README's examples are real: the CNI conflist parses as berth reads it, the TOML config validates. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { parseConfigFile } from '../../src/network/cni-config.js';
import { validateConfig } from '../../src/daemon/config.js';
import { repoRoot } from '../helpers/berthd.js';
import { parseSpecText } from '../../src/cdi/index.js';

const readme = () => readFileSync(join(repoRoot(), 'README.md'), 'utf8');

/** The fenced block of `lang` that follows `marker`. */
function blockAfter(text: string, marker: string, lang: string): string {
  const at = text.indexOf(marker);
  assert.ok(at >= 0, `README has ${marker}`);
  const m = new RegExp('```' + lang + '\\n([\\s\\S]*?)\\n```').exec(text.slice(at));
  assert.ok(m, `a ${lang} block follows ${marker}`);
  return m[1]!;
}

test('README: the example CNI conflist is accepted by berth, with its capabilities', () => {
  const net = parseConfigFile(blockAfter(readme(), '<!-- cni-example', 'json'), '10-berth.conflist');
  assert.equal(net.name, 'berth');
  assert.deepEqual(
    net.plugins.map((p) => p.type),
    ['bridge', 'portmap', 'bandwidth'],
  );
  assert.deepEqual(net.plugins[1]?.capabilities, { portMappings: true });
});

test('README: the configuration example validates, and names the cgroup driver kubelet must use', () => {
  const text = readme();
  const c = validateConfig(parseToml(blockAfter(text, '## Configuration', 'toml')));
  assert.equal(c.runtimes.runc?.type, 'io.containerd.runc.v2');
  assert.equal(c.registry.credentials['127.0.0.1:5000']?.username, 'puller');
  assert.match(blockAfter(text, '### kubelet', 'yaml'), /^cgroupDriver: cgroupfs$/m);
  assert.match(blockAfter(text, '### kubelet', 'yaml'), /^containerRuntimeEndpoint: unix:\/\/\/run\/berth\/berth\.sock$/m);
});

test('README: the example CDI spec is accepted by berth', () => {
  const spec = parseSpecText(blockAfter(readme(), '<!-- cdi-example', 'yaml'), '/etc/cdi/example-accel.yaml', 0);
  assert.equal(spec.kind, 'example.com/accel');
  assert.deepEqual([...spec.devices.keys()], ['0']);
  assert.deepEqual(spec.devices.get('0')!.containerEdits.additionalGids, [44]);
});
