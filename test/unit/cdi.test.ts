/**
 * CDI: names, spec file parsing and validation, resolution across spec directories (later
 * wins, same directory ambiguous, broken files block what they might define, reload on
 * change) and the containerEdits applied to an OCI spec.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, renameSync, unlinkSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isBerthError, type BerthError } from '../../src/errors.js';
import {
  applyCdiEdits,
  CdiRegistry,
  parseQualifiedName,
  parseSpecText,
  requestedCdiDevices,
  requiredVersion,
  SpecFileError,
  type CdiHost,
  type ResolvedDevice,
} from '../../src/cdi/index.js';
import type { HostDeviceInfo } from '../../src/oci/devices.js';
import type { Spec } from '../../src/oci/spec.js';

const json = (o: unknown): string => JSON.stringify(o);
const minimal = (extra: object = {}) => ({
  cdiVersion: '0.3.0',
  kind: 'vendor.com/gpu',
  devices: [{ name: 'gpu0', containerEdits: { env: ['A=1'] } }],
  ...extra,
});

function specErr(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SpecFileError, `expected SpecFileError, got ${String(e)}`);
    assert.match(e.message, re);
    return true;
  });
}

test('qualified names: vendor/class=name, validated as the spec says', () => {
  assert.deepEqual(parseQualifiedName('vendor.com/gpu=0'), { vendor: 'vendor.com', class: 'gpu', name: '0', kind: 'vendor.com/gpu' });
  assert.deepEqual(parseQualifiedName('nvidia.com/gpu=all'), { vendor: 'nvidia.com', class: 'gpu', name: 'all', kind: 'nvidia.com/gpu' });
  assert.equal(typeof parseQualifiedName('foo.bar.baz/foo-bar123.B_az=x:1'), 'object');
  for (const bad of [
    '',
    'gpu0',
    'vendor.com/gpu',
    'vendor.com/gpu=',
    '/gpu=0',
    'vendor.com/=0',
    '1vendor.com/gpu=0',
    'vendor.com/gpu-=0',
    'vendor.com/a/b=0',
    'vendor.com/gpu=-x',
    'vendor.com/gpu=x:',
    'vendor.com/gpu=a b',
    'ven dor/gpu=0',
    '/dev/nvidia0',
  ]) {
    assert.equal(typeof parseQualifiedName(bad), 'string', bad);
  }
  assert.match(parseQualifiedName('vendor.com/gpu=a$b') as string, /invalid character "\$"/);
});

test('spec files: JSON and YAML (1.1: 0666 is octal) parse to the same spec', () => {
  const j = parseSpecText(
    json({ cdiVersion: '0.5.0', kind: 'vendor.com/gpu', devices: [{ name: 'gpu0', containerEdits: { deviceNodes: [{ path: '/dev/gpu0', fileMode: 438 }] } }] }),
    '/x/a.json',
    0,
  );
  const y = parseSpecText(
    'cdiVersion: "0.5.0"\nkind: vendor.com/gpu\ndevices:\n  - name: gpu0\n    containerEdits:\n      deviceNodes:\n        - path: /dev/gpu0\n          fileMode: 0666\n',
    '/x/a.yaml',
    0,
  );
  assert.deepEqual(j.devices.get('gpu0'), y.devices.get('gpu0'));
  assert.equal(j.vendor, 'vendor.com');
  assert.equal(j.class, 'gpu');
  assert.equal(parseSpecText(json({ ...minimal(), cdiVersion: 'v1.1.0' }), '/x/b.json', 0).version, '1.1.0');
});

test('spec files that do not parse or validate name the problem', () => {
  specErr(() => parseSpecText('{', '/x/a.json', 0), /not valid JSON/);
  specErr(() => parseSpecText('a: [', '/x/a.yaml', 0), /not valid YAML/);
  specErr(() => parseSpecText('a: 1\na: 2\n', '/x/a.yaml', 0), /not valid YAML/);
  specErr(() => parseSpecText('[]', '/x/a.json', 0), /not a CDI spec/);
  specErr(() => parseSpecText(json({ ...minimal(), extra: 1 }), '/x/a.json', 0), /unknown field "extra"/);
  specErr(
    () => parseSpecText(json({ ...minimal(), devices: [{ name: 'a', containerEdits: { env: ['A=1'], devicenodes: [] } }] }), '/x/a.json', 0),
    /devices\[0\]\.containerEdits: unknown field "devicenodes"/,
  );
  specErr(() => parseSpecText(json({ ...minimal(), cdiVersion: '2.0.0' }), '/x/a.json', 0), /cdiVersion: "2\.0\.0" is not a CDI spec version/);
  specErr(() => parseSpecText(json({ ...minimal(), kind: 'gpu' }), '/x/a.json', 0), /kind: kind "gpu" is not of the form/);
  specErr(() => parseSpecText(json({ ...minimal(), kind: 'vendor.com/gpu/x' }), '/x/a.json', 0), /invalid character "\/"/);
  specErr(() => parseSpecText(json({ ...minimal(), devices: [] }), '/x/a.json', 0), /at least one device/);
  specErr(() => parseSpecText(json({ ...minimal(), devices: [{ name: 'a', containerEdits: {} }] }), '/x/a.json', 0), /containerEdits must not be empty/);
  specErr(
    () =>
      parseSpecText(
        json({
          ...minimal(),
          devices: [
            { name: 'a', containerEdits: { env: ['A=1'] } },
            { name: 'a', containerEdits: { env: ['B=1'] } },
          ],
        }),
        '/x/a.json',
        0,
      ),
    /defined twice/,
  );
  specErr(() => parseSpecText(json({ ...minimal(), devices: [{ name: 'a-', containerEdits: { env: ['A=1'] } }] }), '/x/a.json', 0), /devices\[0\]\.name/);
  specErr(() => parseSpecText(json({ ...minimal(), containerEdits: { env: ['NOEQUALS'] } }), '/x/a.json', 0), /containerEdits\.env\[0\]: must be NAME=VALUE/);
  specErr(() => parseSpecText(json({ ...minimal(), containerEdits: { env: ['=x'] } }), '/x/a.json', 0), /NAME=VALUE/);
  specErr(
    () => parseSpecText(json({ ...minimal(), containerEdits: { deviceNodes: [{ path: '/dev/x', type: 'x' }] } }), '/x/a.json', 0),
    /deviceNodes\[0\]\.type/,
  );
  specErr(
    () => parseSpecText(json({ ...minimal(), containerEdits: { deviceNodes: [{ path: '/dev/x', permissions: 'rwx' }] } }), '/x/a.json', 0),
    /permissions: must be a combination/,
  );
  specErr(() => parseSpecText(json({ ...minimal(), containerEdits: { deviceNodes: [{ path: 'dev/x' }] } }), '/x/a.json', 0), /path: must be an absolute path/);
  specErr(() => parseSpecText(json({ ...minimal(), containerEdits: { deviceNodes: [{ path: '/dev/x', uid: -1 }] } }), '/x/a.json', 0), /uid/);
  specErr(() => parseSpecText(json({ ...minimal(), containerEdits: { deviceNodes: [{ path: '/dev/x', gid: 4294967296 }] } }), '/x/a.json', 0), /gid/);
  specErr(
    () => parseSpecText(json({ ...minimal(), containerEdits: { deviceNodes: [{ path: '/dev/x', fileMode: 0o10666 }] } }), '/x/a.json', 0),
    /fileMode: must be permission bits/,
  );
  specErr(() => parseSpecText(json({ ...minimal(), containerEdits: { hooks: [{ hookName: 'preStart', path: '/bin/true' }] } }), '/x/a.json', 0), /hookName/);
  specErr(
    () => parseSpecText(json({ ...minimal(), containerEdits: { hooks: [{ hookName: 'poststop', path: 'true' }] } }), '/x/a.json', 0),
    /hooks\[0\]\.path: must be an absolute path/,
  );
  specErr(
    () => parseSpecText(json({ ...minimal(), containerEdits: { hooks: [{ hookName: 'poststop', path: '/bin/true', timeout: 0 }] } }), '/x/a.json', 0),
    /timeout: must be greater than zero/,
  );
  specErr(() => parseSpecText(json({ ...minimal(), containerEdits: { mounts: [{ hostPath: '/a' }] } }), '/x/a.json', 0), /containerPath/);
  specErr(() => parseSpecText(json({ ...minimal(), containerEdits: { additionalGids: [1.5] } }), '/x/a.json', 0), /additionalGids\[0\]/);
});

test('cdiVersion must cover the fields the file uses', () => {
  const at = (v: string, extra: object) => () => parseSpecText(json({ ...minimal(), cdiVersion: v, ...extra }), '/x/a.json', 0);
  specErr(at('0.6.0', { containerEdits: { additionalGids: [5] } }), /need at least 0\.7\.0, the file declares 0\.6\.0/);
  specErr(at('0.5.0', { annotations: { a: 'b' } }), /at least 0\.6\.0/);
  specErr(at('0.5.0', { kind: 'vendor.com/gpu.x' }), /at least 0\.6\.0/);
  specErr(at('0.4.0', { devices: [{ name: '0', containerEdits: { env: ['A=1'] } }] }), /at least 0\.5\.0/);
  specErr(at('0.4.0', { containerEdits: { deviceNodes: [{ path: '/dev/a', hostPath: '/dev/b' }] } }), /at least 0\.5\.0/);
  specErr(at('0.3.0', { containerEdits: { mounts: [{ hostPath: '/a', containerPath: '/b', type: 'bind' }] } }), /at least 0\.4\.0/);
  specErr(at('1.0.0', { containerEdits: { netDevices: [{ hostInterfaceName: 'eth1', name: 'net1' }] } }), /at least 1\.1\.0/);
  assert.equal(requiredVersion({ ...minimal(), containerEdits: { intelRdt: { closID: 'x' } } }), '0.7.0');
  assert.equal(requiredVersion(minimal()), '0.3.0');
  assert.ok(at('0.7.0', { containerEdits: { additionalGids: [5] } })());
});

// ---- resolution ----

function tmpDirs(n: number): { root: string; dirs: string[]; cleanup(): void } {
  const root = mkdtempSync(join(tmpdir(), 'berth-cdi-unit-'));
  const dirs = Array.from({ length: n }, (_, i) => join(root, `d${i}`));
  for (const d of dirs) mkdirSync(d);
  return { root, dirs, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

const req = (...names: string[]) => names.map((name, i) => ({ name, field: `config.CDI_devices[${i}].name` }));

async function rejects(p: Promise<unknown>, kind: BerthError['kind'], re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isBerthError(e), String(e));
    assert.equal(e.kind, kind, e.message);
    assert.match(e.message, re);
    return true;
  });
}

test('resolve: a device of a later directory wins; one defined twice in a directory is ambiguous', async () => {
  const t = tmpDirs(2);
  try {
    const [d0, d1] = t.dirs as [string, string];
    writeFileSync(
      join(d0, 'a.json'),
      json({
        ...minimal(),
        devices: [
          { name: 'gpu0', containerEdits: { env: ['FROM=d0'] } },
          { name: 'gpu1', containerEdits: { env: ['FROM=d0'] } },
        ],
      }),
    );
    writeFileSync(join(d1, 'b.yaml'), 'cdiVersion: 0.3.0\nkind: vendor.com/gpu\ndevices:\n  - name: gpu0\n    containerEdits:\n      env: [FROM=d1]\n');
    const reg = new CdiRegistry(t.dirs);
    const r = await reg.resolve(req('vendor.com/gpu=gpu0', 'vendor.com/gpu=gpu1', 'vendor.com/gpu=gpu0'));
    assert.deepEqual(
      r.map((x) => [x.name, x.spec.path, x.device.containerEdits.env]),
      [
        ['vendor.com/gpu=gpu0', join(d1, 'b.yaml'), ['FROM=d1']],
        ['vendor.com/gpu=gpu1', join(d0, 'a.json'), ['FROM=d0']],
      ],
    );
    writeFileSync(join(d1, 'c.json'), json({ ...minimal(), devices: [{ name: 'gpu0', containerEdits: { env: ['FROM=c'] } }] }));
    await rejects(
      reg.resolve(req('vendor.com/gpu=gpu0')),
      'InvalidArgument',
      new RegExp(`"vendor.com/gpu=gpu0" is ambiguous: defined by ${join(d1, 'b.yaml')} and ${join(d1, 'c.json')}`),
    );
    // gpu1 is still only in d0.
    assert.equal((await reg.resolve(req('vendor.com/gpu=gpu1')))[0]!.spec.path, join(d0, 'a.json'));
  } finally {
    t.cleanup();
  }
});

test('resolve: unknown devices, bad names and broken files fail naming the device and the file', async () => {
  const t = tmpDirs(2);
  try {
    const [d0, d1] = t.dirs as [string, string];
    writeFileSync(join(d0, 'a.json'), json(minimal()));
    const reg = new CdiRegistry(t.dirs);
    await rejects(
      reg.resolve(req('vendor.com/gpu=gpu9')),
      'NotFound',
      new RegExp(`CDI device "vendor.com/gpu=gpu9" not found; spec files of kind vendor.com/gpu: ${join(d0, 'a.json')} \\(gpu0\\)`),
    );
    await rejects(reg.resolve(req('other.com/x=y')), 'NotFound', /"other.com\/x=y" not found; no spec file of kind other.com\/x in/);
    await rejects(reg.resolve(req('vendor.com/gpu=all')), 'NotFound', /no implicit "all"/);
    await rejects(
      reg.resolve(req('vendor.com/gpu=gpu0', 'gpu0')),
      'InvalidArgument',
      /config\.CDI_devices\[1\]\.name: "gpu0" is not a fully qualified CDI device name/,
    );
    // A broken file of the same kind in the same (or a later) directory might define it.
    writeFileSync(join(d0, 'broken.yaml'), 'cdiVersion: 0.3.0\nkind: vendor.com/gpu\ndevices:\n  - name: gpu0\n    containerEdits: {env: [A=1], bogus: 1}\n');
    await rejects(
      reg.resolve(req('vendor.com/gpu=gpu0')),
      'InvalidArgument',
      new RegExp(`CDI device "vendor.com/gpu=gpu0": spec file ${join(d0, 'broken.yaml')} cannot be used: .*unknown field "bogus"`),
    );
    // ... but not another kind's devices.
    writeFileSync(join(d0, 'other.json'), json({ ...minimal(), kind: 'other.com/x' }));
    assert.equal((await reg.resolve(req('other.com/x=gpu0'))).length, 1);
    // A file that does not parse but shows its kind blocks only that kind ...
    writeFileSync(join(d1, 'half.json'), '{\n  "cdiVersion": "0.3.0",\n  "kind": "third.com/x",\n  "devices": [');
    assert.equal((await reg.resolve(req('other.com/x=gpu0'))).length, 1);
    await rejects(
      reg.resolve(req('third.com/x=a')),
      'InvalidArgument',
      new RegExp(`"third.com/x=a": spec file ${join(d1, 'half.json')} cannot be used: not valid JSON`),
    );
    unlinkSync(join(d1, 'half.json'));
    // ... and one that does not even show a kind could hold any.
    writeFileSync(join(d1, 'garbage.json'), '{"cdiVersion": ');
    await rejects(reg.resolve(req('other.com/x=gpu0')), 'InvalidArgument', new RegExp(`spec file ${join(d1, 'garbage.json')} cannot be used: not valid JSON`));
    // A definition in a later directory than the broken file wins regardless.
    unlinkSync(join(d1, 'garbage.json'));
    writeFileSync(join(d1, 'fix.json'), json(minimal()));
    assert.equal((await reg.resolve(req('vendor.com/gpu=gpu0')))[0]!.spec.path, join(d1, 'fix.json'));
  } finally {
    t.cleanup();
  }
});

test('resolve: files added, changed in place, replaced by rename and removed are seen; missing dirs are fine', async () => {
  const t = tmpDirs(1);
  try {
    const [d0] = t.dirs as [string];
    const later = join(t.root, 'later');
    const reg = new CdiRegistry([d0, later]);
    await rejects(reg.resolve(req('vendor.com/gpu=gpu0')), 'NotFound', /not found/);
    const f = join(d0, 'a.json');
    writeFileSync(f, json(minimal()));
    assert.deepEqual((await reg.resolve(req('vendor.com/gpu=gpu0')))[0]!.device.containerEdits.env, ['A=1']);
    // Same size, content changed in place (dir mtime unchanged).
    writeFileSync(f, json(minimal()).replace('A=1', 'A=2'));
    assert.deepEqual((await reg.resolve(req('vendor.com/gpu=gpu0')))[0]!.device.containerEdits.env, ['A=2']);
    // Same content length and an old mtime: ctime and inode still tell.
    writeFileSync(join(d0, 'a.tmp'), json(minimal()).replace('A=1', 'A=3'));
    utimesSync(join(d0, 'a.tmp'), new Date(0), new Date(0));
    renameSync(join(d0, 'a.tmp'), f);
    assert.deepEqual((await reg.resolve(req('vendor.com/gpu=gpu0')))[0]!.device.containerEdits.env, ['A=3']);
    // A directory created after start.
    mkdirSync(later);
    writeFileSync(join(later, 'b.yaml'), 'cdiVersion: 0.3.0\nkind: vendor.com/gpu\ndevices: [{name: gpu0, containerEdits: {env: [A=later]}}]\n');
    assert.deepEqual((await reg.resolve(req('vendor.com/gpu=gpu0')))[0]!.device.containerEdits.env, ['A=later']);
    rmSync(later, { recursive: true });
    unlinkSync(f);
    await rejects(reg.resolve(req('vendor.com/gpu=gpu0')), 'NotFound', /not found/);
    // Other files and subdirectories are ignored.
    writeFileSync(join(d0, 'notes.txt'), 'x');
    mkdirSync(join(d0, 'sub.json'));
    await rejects(reg.resolve(req('vendor.com/gpu=gpu0')), 'NotFound', /not found/);
    // Concurrent resolves share the scan and agree.
    writeFileSync(f, json(minimal()));
    const all = await Promise.all(Array.from({ length: 8 }, () => reg.resolve(req('vendor.com/gpu=gpu0'))));
    for (const r of all) assert.equal(r[0]!.spec.path, f);
  } finally {
    t.cleanup();
  }
});

test('resolve: a directory given twice counts once, at its later place', async () => {
  const t = tmpDirs(2);
  try {
    const [d0, d1] = t.dirs as [string, string];
    writeFileSync(join(d0, 'a.json'), json({ ...minimal(), devices: [{ name: 'gpu0', containerEdits: { env: ['FROM=d0'] } }] }));
    writeFileSync(join(d1, 'b.json'), json({ ...minimal(), devices: [{ name: 'gpu0', containerEdits: { env: ['FROM=d1'] } }] }));
    const reg = new CdiRegistry([d0, d1, `${d0}/`]);
    assert.deepEqual(reg.specDirs(), [d1, d0]);
    assert.deepEqual((await reg.resolve(req('vendor.com/gpu=gpu0')))[0]!.device.containerEdits.env, ['FROM=d0']);
  } finally {
    t.cleanup();
  }
});

test('requests: CDI_devices first, then cdi.k8s.io/ annotations (comma-separated); others ignored', () => {
  const r = requestedCdiDevices([{ name: 'a.com/b=c' }], { 'cdi.k8s.io/plugin_dev1': 'x.com/y=1,x.com/y=2', 'other/key': 'q.com/r=s' });
  assert.deepEqual(r, [
    { name: 'a.com/b=c', field: 'config.CDI_devices[0].name' },
    { name: 'x.com/y=1', field: 'config.annotations["cdi.k8s.io/plugin_dev1"]' },
    { name: 'x.com/y=2', field: 'config.annotations["cdi.k8s.io/plugin_dev1"]' },
  ]);
  assert.deepEqual(requestedCdiDevices([], {}), []);
});

// ---- edits ----

function baseSpec(): Spec {
  return {
    ociVersion: '1.1.0',
    process: { user: { uid: 0, gid: 0, additionalGids: [0, 10] }, args: ['sh'], cwd: '/', env: ['PATH=/bin', 'KEEP=1'] },
    root: { path: 'rootfs' },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs' },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts' },
      { destination: '/etc/hosts', type: 'bind', source: '/h/hosts', options: ['rbind'] },
    ],
    linux: { resources: { devices: [{ allow: false, access: 'rwm' }] }, devices: [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229 }] },
  };
}

const hostDevs: Record<string, HostDeviceInfo> = {
  '/dev/null': { type: 'c', major: 1, minor: 3, mode: 0o20666, uid: 0, gid: 0 },
  '/dev/sda': { type: 'b', major: 8, minor: 0, mode: 0o60660, uid: 0, gid: 6 },
  '/run/fifo': { type: 'p', major: 0, minor: 0, mode: 0o10600, uid: 0, gid: 0 },
};
const host: CdiHost = {
  statDevice: (p) => hostDevs[p],
  realpath: (p) => (p === '/opt/lib' ? '/opt/real/lib' : p === '/missing' ? undefined : p),
};

function resolvedFrom(specText: object, names: string[], path = '/etc/cdi/v.json'): ResolvedDevice[] {
  const s = parseSpecText(json(specText), path, 0);
  return names.map((n) => ({ name: `${s.kind}=${n}`, device: s.devices.get(n)!, spec: s }));
}

test('edits: env replaces or appends; spec-level edits once per file, before the device edits', () => {
  const spec = baseSpec();
  const r = resolvedFrom(
    {
      cdiVersion: '0.3.0',
      kind: 'v.com/c',
      containerEdits: { env: ['SPEC=1', 'KEEP=2'] },
      devices: [
        { name: 'a', containerEdits: { env: ['DEV=a', 'SPEC=from-a'] } },
        { name: 'b', containerEdits: { env: ['DEV=b'] } },
      ],
    },
    ['a', 'b'],
  );
  applyCdiEdits(spec, r, host);
  assert.deepEqual(spec.process!.env, ['PATH=/bin', 'KEEP=2', 'SPEC=from-a', 'DEV=b']);
});

test('edits: device nodes from the host node, given values, cgroup rules and ownership', () => {
  const spec = baseSpec();
  spec.process!.user.uid = 1000;
  spec.process!.user.gid = 2000;
  const r = resolvedFrom(
    {
      cdiVersion: '0.5.0',
      kind: 'v.com/c',
      devices: [
        {
          name: 'a',
          containerEdits: {
            deviceNodes: [
              { path: '/dev/mynull', hostPath: '/dev/null' },
              { path: '/dev/sda', permissions: 'rw', uid: 0, gid: 0 },
              { path: '/dev/fake', type: 'c', major: 240, minor: 7, fileMode: 0o640, permissions: 'mrw' },
              { path: '/dev/fuse', type: 'c', major: 10, minor: 229, permissions: 'none' },
              { path: '/dev/fifo', hostPath: '/run/fifo' },
              { path: '/dev/unbuf', type: 'u', hostPath: '/dev/null' },
            ],
          },
        },
      ],
    },
    ['a'],
  );
  applyCdiEdits(spec, r, host);
  assert.deepEqual(spec.linux!.devices, [
    { path: '/dev/mynull', type: 'c', major: 1, minor: 3, fileMode: 0o666, uid: 1000, gid: 2000 },
    { path: '/dev/sda', type: 'b', major: 8, minor: 0, fileMode: 0o660, uid: 0, gid: 0 },
    { path: '/dev/fake', type: 'c', major: 240, minor: 7, fileMode: 0o640, uid: 1000, gid: 2000 },
    // Replaces berth's own /dev/fuse entry.
    { path: '/dev/fuse', type: 'c', major: 10, minor: 229, uid: 1000, gid: 2000 },
    { path: '/dev/fifo', type: 'p', major: 0, minor: 0, fileMode: 0o600, uid: 1000, gid: 2000 },
    { path: '/dev/unbuf', type: 'u', major: 1, minor: 3, fileMode: 0o666, uid: 1000, gid: 2000 },
  ]);
  assert.deepEqual(spec.linux!.resources!.devices, [
    { allow: false, access: 'rwm' },
    { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
    { allow: true, type: 'b', major: 8, minor: 0, access: 'rw' },
    { allow: true, type: 'c', major: 240, minor: 7, access: 'rwm' },
    { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
  ]);
});

test('edits: a missing or mismatched host device fails naming device and file', () => {
  const bad = (node: object, re: RegExp, kind: BerthError['kind']) => {
    const r = resolvedFrom({ cdiVersion: '0.5.0', kind: 'v.com/c', devices: [{ name: 'a', containerEdits: { deviceNodes: [node] } }] }, ['a']);
    assert.throws(
      () => applyCdiEdits(baseSpec(), r, host),
      (e: unknown) => isBerthError(e) && e.kind === kind && re.test(e.message),
    );
  };
  bad(
    { path: '/dev/nvidia0' },
    /CDI device "v\.com\/c=a" \(\/etc\/cdi\/v\.json: device "a" containerEdits\): deviceNodes\[0\]: host device "\/dev\/nvidia0" is not a device node/,
    'NotFound',
  );
  bad({ path: '/dev/x', type: 'c' }, /host device "\/dev\/x" is not a device node/, 'NotFound');
  bad({ path: '/dev/x', hostPath: '/dev/sda', type: 'c' }, /type "c" does not match the host device "\/dev\/sda" \(type "b"\)/, 'InvalidArgument');
});

test('edits: mounts replace the same destination, bind sources resolved, order by depth', () => {
  const spec = baseSpec();
  const r = resolvedFrom(
    {
      cdiVersion: '0.4.0',
      kind: 'v.com/c',
      devices: [
        {
          name: 'a',
          containerEdits: {
            mounts: [
              { hostPath: '/opt/lib', containerPath: '/usr/lib/vendor', options: ['ro', 'nosuid', 'rbind'] },
              { hostPath: '/etc/other-hosts', containerPath: '/etc/hosts', options: ['bind'] },
              { hostPath: 'tmpfs', containerPath: '/scratch', type: 'tmpfs', options: ['size=1m'] },
            ],
          },
        },
      ],
    },
    ['a'],
  );
  applyCdiEdits(spec, r, host);
  assert.deepEqual(
    spec.mounts!.map((m) => [m.destination, m.type, m.source, m.options]),
    [
      ['/proc', 'proc', 'proc', undefined],
      ['/dev', 'tmpfs', 'tmpfs', undefined],
      ['/scratch', 'tmpfs', 'tmpfs', ['size=1m']],
      ['/dev/pts', 'devpts', 'devpts', undefined],
      ['/etc/hosts', 'bind', '/etc/other-hosts', ['bind']],
      ['/usr/lib/vendor', 'bind', '/opt/real/lib', ['ro', 'nosuid', 'rbind']],
    ],
  );
  const missing = resolvedFrom(
    {
      cdiVersion: '0.3.0',
      kind: 'v.com/c',
      devices: [{ name: 'a', containerEdits: { mounts: [{ hostPath: '/missing', containerPath: '/m', options: ['bind'] }] } }],
    },
    ['a'],
  );
  assert.throws(
    () => applyCdiEdits(baseSpec(), missing, host),
    (e: unknown) => isBerthError(e) && e.kind === 'NotFound' && /mounts\[0\]: host path "\/missing" does not exist/.test(e.message),
  );
  const relative = resolvedFrom(
    {
      cdiVersion: '0.3.0',
      kind: 'v.com/c',
      devices: [{ name: 'a', containerEdits: { mounts: [{ hostPath: 'lib', containerPath: '/m', options: ['rbind'] }] } }],
    },
    ['a'],
  );
  assert.throws(
    () => applyCdiEdits(baseSpec(), relative, host),
    (e: unknown) => isBerthError(e) && e.kind === 'InvalidArgument' && /bind source "lib" must be an absolute path/.test(e.message),
  );
});

test('edits: hooks appended by name, additionalGids added once (0 ignored), intelRdt set', () => {
  const spec = baseSpec();
  spec.hooks = { poststop: [{ path: '/bin/existing' }] };
  const r = resolvedFrom(
    {
      cdiVersion: '0.7.0',
      kind: 'v.com/c',
      containerEdits: {
        additionalGids: [44, 0, 10],
        hooks: [{ hookName: 'createContainer', path: '/usr/bin/vendor-hook', args: ['vendor-hook', 'x'], env: ['K=V'], timeout: 5 }],
      },
      devices: [
        {
          name: 'a',
          containerEdits: {
            additionalGids: [44, 45],
            hooks: [
              { hookName: 'poststop', path: '/bin/cleanup' },
              { hookName: 'prestart', path: '/bin/pre' },
            ],
            intelRdt: { closID: 'gold', l3CacheSchema: 'L3:0=ff' },
          },
        },
      ],
    },
    ['a'],
  );
  applyCdiEdits(spec, r, host);
  assert.deepEqual(spec.process!.user.additionalGids, [0, 10, 44, 45]);
  assert.deepEqual(spec.hooks, {
    poststop: [{ path: '/bin/existing' }, { path: '/bin/cleanup' }],
    createContainer: [{ path: '/usr/bin/vendor-hook', args: ['vendor-hook', 'x'], env: ['K=V'], timeout: 5 }],
    prestart: [{ path: '/bin/pre' }],
  });
  assert.deepEqual(spec.linux!.intelRdt, { closID: 'gold', l3CacheSchema: 'L3:0=ff' });
});

test('edits: what runc 1.1 cannot do is refused, not dropped', () => {
  const net = resolvedFrom(
    { cdiVersion: '1.1.0', kind: 'v.com/c', devices: [{ name: 'a', containerEdits: { netDevices: [{ hostInterfaceName: 'eth9', name: 'net1' }] } }] },
    ['a'],
  );
  assert.throws(() => applyCdiEdits(baseSpec(), net, host), /CDI device "v\.com\/c=a" .*netDevices cannot be applied/);
  const rdt = resolvedFrom({ cdiVersion: '1.1.0', kind: 'v.com/c', devices: [{ name: 'a', containerEdits: { intelRdt: { schemata: ['L3:0=f'] } } }] }, ['a']);
  assert.throws(() => applyCdiEdits(baseSpec(), rdt, host), /intelRdt schemata\/enableMonitoring cannot be applied/);
});

test('edits: in a user namespace a node with another host path is bound from it (runc binds from the container path)', () => {
  const spec = baseSpec();
  spec.linux!.namespaces = [{ type: 'user', path: '/run/x/user' }];
  const r = resolvedFrom(
    {
      cdiVersion: '0.5.0',
      kind: 'v.com/c',
      devices: [{ name: 'a', containerEdits: { deviceNodes: [{ path: '/dev/mynull', hostPath: '/dev/null' }, { path: '/dev/null' }] } }],
    },
    ['a'],
  );
  applyCdiEdits(spec, r, host);
  assert.deepEqual(spec.linux!.devices, [
    { path: '/dev/fuse', type: 'c', major: 10, minor: 229 },
    { path: '/dev/null', type: 'c', major: 1, minor: 3, fileMode: 0o666 },
  ]);
  assert.deepEqual(
    spec.mounts!.find((m) => m.destination === '/dev/mynull'),
    { destination: '/dev/mynull', type: 'bind', source: '/dev/null', options: ['bind', 'nosuid', 'noexec'] },
  );
  assert.deepEqual(spec.linux!.resources!.devices!.slice(1), [
    { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
    { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
  ]);
  // A node given only by its numbers cannot be bound there: refused up front.
  const fake = resolvedFrom(
    { cdiVersion: '0.3.0', kind: 'v.com/c', devices: [{ name: 'f', containerEdits: { deviceNodes: [{ path: '/dev/fake', type: 'c', major: 240 }] } }] },
    ['f'],
  );
  const u = baseSpec();
  u.linux!.namespaces = [{ type: 'user' }];
  assert.throws(
    () => applyCdiEdits(u, fake, host),
    (e: unknown) => isBerthError(e) && e.kind === 'NotFound' && /host device "\/dev\/fake" does not exist \(in a user namespace/.test(e.message),
  );
});
