import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileInRoot, readUserDb, resolveInRoot, withMountedRootfs } from '../../src/cri/container/rootfs.js';
import { execFileSync } from 'node:child_process';
import { openSync, closeSync, readdirSync } from 'node:fs';

function fixture(): { base: string; root: string; outside: string } {
  const base = mkdtempSync(join(tmpdir(), 'berth-rootfs-unit-'));
  const root = join(base, 'root');
  const outside = join(base, 'outside');
  mkdirSync(join(root, 'etc'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret'), 'host secret\n');
  return { base, root, outside };
}

test('absolute symlinks in the image resolve inside the root, never to the host', async () => {
  const { base, root, outside } = fixture();
  try {
    writeFileSync(join(root, 'etc', 'real-passwd'), 'app:x:1002:1002::/:/bin/sh\n');
    symlinkSync(join(outside, 'secret'), join(root, 'etc', 'hostlink'));
    symlinkSync('/etc/real-passwd', join(root, 'etc', 'passwd'));
    assert.equal(await resolveInRoot(root, '/etc/passwd'), join(root, 'etc', 'real-passwd'));
    // The host path the link names does not exist inside the root.
    assert.equal(await readFileInRoot(root, '/etc/hostlink', 1024), undefined);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('.. in paths and relative links stops at the root', async () => {
  const { base, root } = fixture();
  try {
    writeFileSync(join(root, 'etc', 'group'), 'users:x:100:\n');
    symlinkSync('../../../../../etc/group', join(root, 'etc', 'up'));
    assert.equal(await resolveInRoot(root, '/etc/up'), join(root, 'etc', 'group'));
    assert.equal(await resolveInRoot(root, '/../../etc/group'), join(root, 'etc', 'group'));
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('symlink loops give up instead of spinning', async () => {
  const { base, root } = fixture();
  try {
    symlinkSync('/etc/b', join(root, 'etc', 'a'));
    symlinkSync('/etc/a', join(root, 'etc', 'b'));
    assert.equal(await resolveInRoot(root, '/etc/a'), undefined);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('reads are bounded and only regular files are read', async () => {
  const { base, root } = fixture();
  try {
    writeFileSync(join(root, 'etc', 'big'), 'x'.repeat(5000));
    assert.equal((await readFileInRoot(root, '/etc/big', 100))!.length, 100);
    assert.equal(await readFileInRoot(root, '/etc', 100), undefined);
    assert.equal(await readFileInRoot(root, '/etc/missing', 100), undefined);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('readUserDb parses the image passwd and group; missing files give empty parts', async () => {
  const { base, root } = fixture();
  try {
    writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1002:1002::/home/app:/bin/sh\n');
    const db = await readUserDb(root);
    assert.deepEqual(
      db.passwd?.map((p) => p.uid),
      [0, 1002],
    );
    assert.equal(db.group, undefined);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('image files are read from a read-only, nodev, nosuid, noexec mount; only regular files are opened', async () => {
  const { base, root } = fixture();
  try {
    writeFileSync(join(root, 'etc', 'group'), 'users:x:100:\n');
    execFileSync('mknod', [join(root, 'etc', 'passwd'), 'c', '1', '3']);
    const tmp = join(base, 'tmp');
    mkdirSync(tmp);
    await withMountedRootfs([{ type: 'bind', source: root, options: ['rw', 'rbind'] }], tmp, async (r) => {
      assert.equal(await readFileInRoot(r, '/etc/passwd', 1024), undefined, 'a device node is not a passwd file');
      assert.equal(await readFileInRoot(r, '/etc/group', 1024), 'users:x:100:\n');
      assert.throws(() => writeFileSync(join(r, 'etc', 'new'), 'x'), { code: 'EROFS' });
      // nodev: even root cannot open the image's device nodes through this mount.
      assert.throws(() => closeSync(openSync(join(r, 'etc', 'passwd'), 'r')), { code: 'EACCES' });
    });
    assert.deepEqual(readdirSync(tmp), [], 'the mount point is gone');
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
