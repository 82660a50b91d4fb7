/**
 * The pure parts of image volumes (src/cri/container/image-volume.ts): checking a kubelet-shaped
 * image mount, the sub path rules, view keys, the set of views the records use, and sub path
 * resolution beneath a directory (openat2: symlinks that lead out are refused, not followed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { MountSchema } from '../../src/api/cri/runtime/v1/api_pb.js';
import { isBerthError } from '../../src/errors.js';
import {
  checkImageMount,
  imageVolumesOf,
  normalizeSubPath,
  parseViewKey,
  resolveBeneath,
  usedViews,
  viewKey,
  viewPath,
} from '../../src/cri/container/image-volume.js';

const IMG = `sha256:${'ab'.repeat(32)}`;
const mount = (extra: Record<string, unknown>) =>
  create(MountSchema, { containerPath: '/vol', readonly: true, image: { image: IMG }, ...extra } as MessageInitShape<typeof MountSchema>);
const invalidNaming = (field: string) => (e: unknown) => isBerthError(e, 'InvalidArgument') && e.message.includes(field);

test('a kubelet-shaped image mount passes; host_path, readonly=false, recursive_read_only and an empty image are refused naming the field', () => {
  assert.deepEqual(checkImageMount(mount({ imageSubPath: '/data//sub/./' }), 2), { index: 2, field: 'config.mounts[2]', image: IMG, subPath: 'data/sub' });
  assert.throws(() => checkImageMount(mount({ hostPath: '/etc' }), 0), invalidNaming('config.mounts[0].host_path'));
  assert.throws(() => checkImageMount(mount({ readonly: false }), 1), invalidNaming('config.mounts[1].readonly'));
  assert.throws(() => checkImageMount(mount({ recursiveReadOnly: true }), 0), invalidNaming('config.mounts[0].recursive_read_only'));
  assert.throws(() => checkImageMount(mount({ image: { image: '' } }), 3), invalidNaming('config.mounts[3].image.image'));
});

test('sub paths: ".." anywhere and NUL are refused; "", "." and "/" are the image root', () => {
  for (const bad of ['..', '../etc', 'a/../../b', 'a/..']) assert.throws(() => normalizeSubPath(bad, 'f'), invalidNaming('".." is not allowed'), bad);
  assert.throws(() => normalizeSubPath('a\0b', 'f'), invalidNaming('NUL'));
  for (const root of ['', '.', '/', '//./']) assert.equal(normalizeSubPath(root, 'f'), '');
  assert.equal(normalizeSubPath('a..b/c', 'f'), 'a..b/c');
});

test('view keys name the pod and the image and parse back; other snapshot keys do not parse', () => {
  const k = viewKey('0123abcd', IMG);
  assert.equal(k, `imgvol-0123abcd-${'ab'.repeat(32)}`);
  assert.deepEqual(parseViewKey(k), { sandboxId: '0123abcd', imageId: IMG });
  assert.equal(viewPath('/run/berth', k), `/run/berth/imgvol/0123abcd/${'ab'.repeat(32)}`);
  for (const other of ['0123abcd', `sha256:${'ab'.repeat(32)}`, 'imgvol-x-y', `imgvol-0123abcd-${'ab'.repeat(31)}`, `imgvol-../-${'ab'.repeat(32)}`])
    assert.equal(parseViewKey(other), undefined, other);
});

test('the views in use are the union of what the records name; records without any name none', () => {
  const a = viewKey('s1', IMG);
  const b = viewKey('s2', IMG);
  const used = usedViews([{ extra: { imageVolumes: [a] } }, { extra: {} }, { extra: { imageVolumes: [a, b, 7] } }, { extra: { imageVolumes: 'junk' } }]);
  assert.deepEqual([...used].sort(), [a, b].sort());
  assert.deepEqual(imageVolumesOf({ extra: {} }), []);
});

test('resolveBeneath follows symlinks that stay inside, refuses ones that lead out, names missing paths and files', (t) => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'berth-imgvol-unit-')));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const root = join(dir, 'root');
  mkdirSync(join(root, 'a', 'b'), { recursive: true });
  mkdirSync(join(dir, 'outside'));
  writeFileSync(join(root, 'a', 'file'), 'x');
  symlinkSync('b', join(root, 'a', 'inside'));
  symlinkSync('../../outside', join(root, 'a', 'up'));
  symlinkSync(join(dir, 'outside'), join(root, 'abs'));
  const what = 'image "t"';
  assert.equal(resolveBeneath(root, '', 'f', what), root);
  assert.equal(resolveBeneath(root, 'a/b', 'f', what), join(root, 'a', 'b'));
  assert.equal(resolveBeneath(root, 'a/inside', 'f', what), join(root, 'a', 'b'));
  assert.throws(
    () => resolveBeneath(root, 'a/up', 'f.image_sub_path', what),
    (e) => isBerthError(e, 'InvalidArgument') && /f\.image_sub_path "a\/up" leads out of image "t"/.test(e.message),
  );
  assert.throws(
    () => resolveBeneath(root, 'abs', 'f', what),
    (e) => isBerthError(e, 'InvalidArgument') && /leads out/.test(e.message),
  );
  assert.throws(
    () => resolveBeneath(root, 'a/missing', 'f', what),
    (e) => isBerthError(e, 'NotFound') && /"a\/missing" does not exist in image "t"/.test(e.message),
  );
  assert.throws(
    () => resolveBeneath(root, 'a/file', 'f', what),
    (e) => isBerthError(e, 'InvalidArgument') && /not a directory/.test(e.message),
  );
});
