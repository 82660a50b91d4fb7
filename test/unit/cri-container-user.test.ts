/** ContainerStatus.user from /proc: the ids the init process really has, inside its user namespace. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { idsFromProc, processUser } from '../../src/cri/container/status.js';

const status = (uid: string, gid: string, groups: string) => `Name:\tsh\nUid:\t${uid}\nGid:\t${gid}\nFDSize:\t64\nGroups:\t${groups}\nNStgid:\t1\n`;

test('host ids map back through the user namespace maps; unmapped ids give no answer', () => {
  const um = '         0     165536      65536\n';
  const gm = '         0     165536      65536\n';
  assert.deepEqual(idsFromProc(status('166538\t166538\t166538\t166538', '166538\t166538\t166538\t166538', '166538 165636 168536 '), um, gm), {
    uid: 1002,
    gid: 1002,
    additionalGids: [1002, 100, 3000],
  });
  assert.equal(idsFromProc(status('1000\t1000\t1000\t1000', '165536\t0\t0\t0', ''), um, gm), undefined);
});

test('no supplementary groups: an empty Groups line, not the next line of the file', () => {
  const all = '0 0 4294967295\n';
  assert.deepEqual(idsFromProc(status('0\t0\t0\t0', '0\t0\t0\t0', ' '), all, all), { uid: 0, gid: 0, additionalGids: [] });
});

test('the test process itself reads as its own ids', async () => {
  const u = await processUser(process.pid);
  assert.equal(u?.uid, process.getuid!());
  assert.equal(u?.gid, process.getgid!());
  for (const g of u!.additionalGids) assert.ok(process.getgroups!().includes(g), `group ${g}`);
  assert.equal(await processUser(2 ** 30), undefined);
});
