import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBerthError } from '../../src/errors.js';
import { ALL_CAPABILITIES, applyCapabilityChanges, capabilitiesUpTo, capabilitySets, DEFAULT_CAPABILITIES } from '../../src/oci/capabilities.js';

test('the full capability list has every capability up to CAP_CHECKPOINT_RESTORE, in kernel order', () => {
  assert.equal(ALL_CAPABILITIES.length, 41);
  assert.equal(ALL_CAPABILITIES[0], 'CAP_CHOWN');
  assert.equal(ALL_CAPABILITIES[21], 'CAP_SYS_ADMIN');
  assert.equal(ALL_CAPABILITIES[40], 'CAP_CHECKPOINT_RESTORE');
  assert.equal(new Set(ALL_CAPABILITIES).size, 41);
  assert.deepEqual(capabilitiesUpTo(37).at(-1), 'CAP_AUDIT_READ');
});

test('no changes keeps the default set', () => {
  assert.deepEqual(applyCapabilityChanges(DEFAULT_CAPABILITIES, [], []), [...DEFAULT_CAPABILITIES]);
  assert.equal(DEFAULT_CAPABILITIES.includes('CAP_SYS_ADMIN'), false);
});

test('add and drop accept names with or without CAP_ and in any case', () => {
  const caps = applyCapabilityChanges(DEFAULT_CAPABILITIES, ['net_admin', 'CAP_SYS_TIME'], ['chown', 'CAP_KILL']);
  assert.ok(caps.includes('CAP_NET_ADMIN'));
  assert.ok(caps.includes('CAP_SYS_TIME'));
  assert.ok(!caps.includes('CAP_CHOWN'));
  assert.ok(!caps.includes('CAP_KILL'));
});

test('drop ALL then add one leaves only that one', () => {
  assert.deepEqual(applyCapabilityChanges(DEFAULT_CAPABILITIES, ['NET_BIND_SERVICE'], ['ALL']), ['CAP_NET_BIND_SERVICE']);
});

test('add ALL then drop one leaves everything else', () => {
  const caps = applyCapabilityChanges(DEFAULT_CAPABILITIES, ['ALL'], ['CHOWN']);
  assert.equal(caps.length, ALL_CAPABILITIES.length - 1);
  assert.ok(!caps.includes('CAP_CHOWN'));
  assert.ok(caps.includes('CAP_SYS_ADMIN'));
});

test('add ALL and drop ALL together drop everything', () => {
  assert.deepEqual(applyCapabilityChanges(DEFAULT_CAPABILITIES, ['all'], ['all']), []);
});

test('unknown capabilities are InvalidArgument naming the field', () => {
  assert.throws(
    () => applyCapabilityChanges(DEFAULT_CAPABILITIES, ['SYS_GODMODE'], [], ALL_CAPABILITIES, 'container config: linux.security_context.capabilities'),
    (e) => isBerthError(e, 'InvalidArgument') && e.message.includes('capabilities.add_capabilities') && e.message.includes('SYS_GODMODE'),
  );
});

test('capability sets leave inheritable and ambient empty', () => {
  const sets = capabilitySets(['CAP_CHOWN']);
  assert.deepEqual(sets, { bounding: ['CAP_CHOWN'], effective: ['CAP_CHOWN'], permitted: ['CAP_CHOWN'] });
});
