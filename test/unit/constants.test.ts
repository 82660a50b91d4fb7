// Constants defined once: berth's version is package.json's; the CRI annotations berth-shim
// reads are the ones the spec generator writes; VersionResponse.version is the CRI's fixed one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BERTH_VERSION } from '../../src/version.js';
import { Annotations } from '../../src/oci/index.js';
import { CRI_CONTAINER_TYPE_ANNOTATION, SANDBOX_ID_ANNOTATION } from '../../src/shim-protocol.js';
import { version } from '../../src/cri/version.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

test('BERTH_VERSION is the version in package.json', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.equal(BERTH_VERSION, pkg.version);
});

test('the annotations berth-shim reads are the ones the spec generator sets', () => {
  assert.equal(Annotations.ContainerType, CRI_CONTAINER_TYPE_ANNOTATION);
  assert.equal(Annotations.SandboxID, SANDBOX_ID_ANNOTATION);
  assert.equal(CRI_CONTAINER_TYPE_ANNOTATION, 'io.kubernetes.cri.container-type');
  assert.equal(SANDBOX_ID_ANNOTATION, 'io.kubernetes.cri.sandbox-id');
});

test('Version answers the CRI API version and berth as the runtime with its own version', async () => {
  const v = await version()({} as never, { namespace: 'k8s.io', signal: new AbortController().signal });
  assert.deepEqual(v, { version: '0.1.0', runtimeName: 'berth', runtimeVersion: BERTH_VERSION, runtimeApiVersion: 'v1' });
});

test('no SIGKILL or k8s.io literal outside the one place each is defined', () => {
  const files = ['src/cri/container/lifecycle.ts', 'src/cri/stream/exec.ts', 'src/cri/sandbox/teardown.ts', 'src/cri/recover.ts'];
  for (const f of files) {
    const text = readFileSync(join(ROOT, f), 'utf8');
    assert.doesNotMatch(text, /SIGKILL = 9|kill\([^)]*, 9[,)]/, `${f}: SIGKILL is os.constants.signals.SIGKILL`);
    assert.doesNotMatch(text, /'k8s\.io'/, `${f}: k8s.io is CRI_NAMESPACE`);
  }
});
