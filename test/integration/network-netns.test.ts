import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNetns, isNetns, listNetns, removeNetns, verifyNetns } from '../../src/network/index.js';
import { inNetns, isRoot, run, uniqueTag } from '../helpers/netns.js';
import { isBerthError } from '../../src/errors.js';

const skip = !isRoot() ? 'needs root' : false;

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const base = await mkdtemp(join(tmpdir(), 'berth-netns-'));
  const dir = join(base, 'netns');
  try {
    await fn(dir);
  } finally {
    for (const name of await listNetns(dir).catch(() => [])) await removeNetns(join(dir, name)).catch(() => undefined);
    // createNetns made `dir` a bind mount of itself; undo it before deleting the temp tree.
    run('umount', ['--lazy', dir]);
    await rm(base, { recursive: true, force: true });
  }
}

test('netns create gives a live namespace with lo up and remove deletes it idempotently', { skip }, async () => {
  await withDir(async (dir) => {
    const name = `t-${uniqueTag()}`;
    const path = await createNetns(name, { dir });
    assert.equal(path, join(dir, name));
    assert.equal(await isNetns(path), true);
    await verifyNetns(path);
    assert.deepEqual(await listNetns(dir), [name]);

    const lo = inNetns(path, 'ip', ['-o', 'link', 'show', 'lo']);
    assert.equal(lo.code, 0, lo.stderr);
    assert.match(lo.stdout, /[<,]UP[,>]/);
    // A separate namespace: the host's interfaces are not in it.
    const links = inNetns(path, 'ip', ['-o', 'link']).stdout.trim().split('\n');
    assert.equal(links.length, 1, links.join('\n'));
    assert.match(inNetns(path, 'ip', ['-o', 'addr', 'show', 'lo']).stdout, /inet 127\.0\.0\.1\/8/);

    await removeNetns(path);
    assert.equal(await isNetns(path), false);
    await assert.rejects(stat(path), { code: 'ENOENT' });
    await removeNetns(path);
    await assert.rejects(verifyNetns(path), (e: unknown) => isBerthError(e, 'NotFound'));
  });
});

test('netns create refuses an existing name and a name with a slash', { skip }, async () => {
  await withDir(async (dir) => {
    const name = `t-${uniqueTag()}`;
    const path = await createNetns(name, { dir });
    await assert.rejects(createNetns(name, { dir }), (e: unknown) => isBerthError(e, 'AlreadyExists'));
    assert.equal(await isNetns(path), true, 'the existing namespace is untouched');
    await assert.rejects(createNetns('../evil', { dir }), (e: unknown) => isBerthError(e, 'InvalidArgument'));
  });
});

test('netns dir is a shared mount so later mount namespaces see the unmount', { skip }, async () => {
  await withDir(async (dir) => {
    await createNetns(`t-${uniqueTag()}`, { dir });
    const line = run('findmnt', ['-n', '-o', 'PROPAGATION', '--mountpoint', dir]).stdout.trim();
    assert.match(line, /shared/);
  });
});
