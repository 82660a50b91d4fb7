/**
 * Fuzzing (issue 12, the program): a short bounded run of every target of test/fuzz (fixed
 * seed, so a failure here reproduces with `npm run fuzz -- --seed 12 --target NAME`), and the
 * regression tests of the crashes fuzzing found. The long run is `npm run fuzz -- --seconds N`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runTarget } from '../fuzz/engine.js';
import { paxRecords, tarOf, targets } from '../fuzz/targets.js';
import { Rng } from '../fuzz/engine.js';
import { isBerthError } from '../../src/errors.js';
import { applyLayer } from '../../src/core/unpack/apply.js';
import { parseManifestOrIndex } from '../../src/core/images/manifest.js';
import { decode, schema } from '../../src/ttrpc/pb.js';

const SEED = 12;
/** Per target; about 3 s for the whole set. */
const BUDGET_MS = 350;
const MIN_INPUTS = 30;

for (const t of targets) {
  test(`fuzz ${t.name}: ${BUDGET_MS} ms (at least ${MIN_INPUTS}) of inputs (seed ${SEED}) find nothing`, async () => {
    // At least MIN_INPUTS whatever the load, so a busy machine shortens nothing but the extra inputs.
    const r = await runTarget(t, { seed: SEED, budgetMs: BUDGET_MS, minIterations: MIN_INPUTS, capMs: 2000 });
    assert.deepEqual(r.findings, []);
    assert.ok(r.execs >= MIN_INPUTS, `only ${r.execs} executions`);
  });
}

test('the engine reports what a target throws unexpectedly, with a reproducible iteration', async () => {
  const r = await runTarget(
    {
      name: 'broken',
      gen: (rng) => rng.int(10),
      run: (n) => {
        if (n === 7) throw new TypeError('boom');
      },
      expected: () => false,
    },
    { seed: 1, budgetMs: 2000, maxIterations: 500 },
  );
  assert.equal(r.findings.length, 1);
  const f = r.findings[0]!;
  assert.match(f.message, /TypeError: boom/);
  // The iteration alone regenerates the input.
  assert.equal(new Rng((await import('../fuzz/engine.js')).iterationSeed(1, f.iteration)).int(10), 7);
});

test('regression (fuzz): a string field with invalid UTF-8 is a decoder error, not a TypeError', () => {
  const S = schema('t.S', [[1, 'id', 'string']]);
  assert.throws(
    () => decode(S, Uint8Array.from([0x0a, 0x02, 0xc3, 0x28])),
    (e: Error) => e.constructor === Error && /invalid UTF-8/.test(e.message),
  );
});

test('regression (fuzz): an index whose platform is not strings is InvalidArgument, not a TypeError in matching', () => {
  const digest = `sha256:${'a'.repeat(64)}`;
  for (const platform of [{ architecture: 5, os: 'linux' }, { os: 'linux' }, 'amd64', { architecture: 'amd64', os: 'linux', 'os.features': [1] }]) {
    const doc = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 1, platform }],
      }),
    );
    assert.throws(
      () => parseManifestOrIndex(doc, 'application/vnd.oci.image.index.v1+json', 'index'),
      (e) => isBerthError(e, 'InvalidArgument') && /platform/.test((e as Error).message),
      JSON.stringify(platform),
    );
  }
  const annotated = Buffer.from(
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 1, annotations: { a: 1 } }] }),
  );
  assert.throws(
    () => parseManifestOrIndex(annotated, 'application/vnd.oci.image.index.v1+json', 'index'),
    (e) => isBerthError(e, 'InvalidArgument'),
  );
});

test('regression (fuzz): layer entries the kernel refuses (bad xattr, empty symlink target, NUL in a path) are InvalidArgument', async () => {
  const root = mkdtempSync(join(tmpdir(), 'berth-fuzz-reg-'));
  try {
    const rng = new Rng(1);
    const cases = [
      // A malformed file capability: lsetxattr EINVAL (was a bare errno error).
      tarOf([
        { name: 'x', type: 'x', body: paxRecords(rng, { 'SCHILY.xattr.security.capability': 'zz' }, true) },
        { name: 'f', type: '0', body: Buffer.from('a') },
      ]),
      // user.* on a symlink: EPERM.
      tarOf([
        { name: 'x', type: 'x', body: paxRecords(rng, { 'SCHILY.xattr.user.a': 'b' }, true) },
        { name: 'l', type: '2', body: Buffer.alloc(0), linkname: 't' },
      ]),
      // symlink(2) with an empty target: ENOENT.
      tarOf([{ name: 'l2', type: '2', body: Buffer.alloc(0), linkname: '' }]),
      // A NUL byte in a PAX link target (seed 20261203, iteration 20407): Node's TypeError.
      tarOf([
        { name: 'x', type: 'x', body: paxRecords(rng, { linkpath: 'a\0b' }, true) },
        { name: 'l3', type: '2', body: Buffer.alloc(0), linkname: 'x' },
      ]),
      tarOf([
        { name: 'x', type: 'x', body: paxRecords(rng, { path: 'a\0b' }, true) },
        { name: 'f', type: '0', body: Buffer.from('a') },
      ]),
    ];
    for (const [i, tar] of cases.entries()) {
      await assert.rejects(
        applyLayer(Readable.from([tar]), root, { mode: 'native' }),
        (e) => isBerthError(e, 'InvalidArgument') && /invalid layer tar/.test((e as Error).message),
        `case ${i}`,
      );
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
