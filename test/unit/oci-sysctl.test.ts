import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBerthError } from '../../src/errors.js';
import { sysctlNamespace, validateSysctls } from '../../src/oci/sysctl.js';

const pod = { hostNetwork: false, hostIpc: false };

test('namespaced sysctls are allowed and returned as a separate key/value map', () => {
  const input = {
    'kernel.shm_rmid_forced': '1',
    'kernel.msgmax': '65536',
    'kernel.sem': '250 32000 100 128',
    'fs.mqueue.msg_max': '10',
    'net.ipv4.ip_forward': '1',
    'net.ipv4.conf.eth0.rp_filter': '0',
  };
  const out = validateSysctls(input, pod);
  assert.deepEqual(out, input);
  assert.notEqual(out, input);
});

test('sysctl namespaces', () => {
  assert.equal(sysctlNamespace('kernel.shmmax'), 'ipc');
  assert.equal(sysctlNamespace('kernel.sem'), 'ipc');
  assert.equal(sysctlNamespace('fs.mqueue.queues_max'), 'ipc');
  assert.equal(sysctlNamespace('net.core.somaxconn'), 'net');
  assert.equal(sysctlNamespace('kernel.core_pattern'), undefined);
  assert.equal(sysctlNamespace('kernel.semaphore'), undefined);
  assert.equal(sysctlNamespace('vm.overcommit_memory'), undefined);
});

test('node-wide sysctls are rejected naming the sysctl', () => {
  for (const key of ['kernel.core_pattern', 'vm.swappiness', 'kernel.hostname', 'fs.file-max']) {
    assert.throws(
      () => validateSysctls({ [key]: '1' }, pod, 'sandbox config: linux.sysctls'),
      (e) => isBerthError(e, 'InvalidArgument') && e.message.includes(key) && e.message.includes('linux.sysctls'),
      key,
    );
  }
});

test('net sysctls are rejected with host network and ipc sysctls with host ipc', () => {
  assert.throws(
    () => validateSysctls({ 'net.ipv4.ip_forward': '1' }, { hostNetwork: true, hostIpc: false }),
    (e) => isBerthError(e, 'InvalidArgument') && /host network/.test(e.message),
  );
  assert.throws(
    () => validateSysctls({ 'kernel.shmmax': '1' }, { hostNetwork: false, hostIpc: true }),
    (e) => isBerthError(e, 'InvalidArgument') && /host ipc/.test(e.message),
  );
  assert.deepEqual(validateSysctls({ 'kernel.shmmax': '1' }, { hostNetwork: true, hostIpc: false }), { 'kernel.shmmax': '1' });
});

test('a value containing + or = stays one value of one key', () => {
  const value = '1+kernel.core_pattern=|/tmp/x';
  const out = validateSysctls({ 'kernel.shm_rmid_forced': value }, pod);
  assert.deepEqual(Object.keys(out), ['kernel.shm_rmid_forced']);
  assert.equal(out['kernel.shm_rmid_forced'], value);
});

test('malformed keys and values are rejected', () => {
  for (const key of ['net/ipv4/ip_forward', 'net..ipv4', 'net.ipv4.', '.net', 'net.ipv4 .x', 'net.ipv4.conf.*.rp_filter', '']) {
    assert.throws(
      () => validateSysctls({ [key]: '1' }, pod),
      (e) => isBerthError(e, 'InvalidArgument'),
      key,
    );
  }
  for (const value of ['1\nkernel.core_pattern=x', 'a\0b', 'x'.repeat(5000)]) {
    assert.throws(
      () => validateSysctls({ 'net.ipv4.ip_forward': value }, pod),
      (e) => isBerthError(e, 'InvalidArgument'),
    );
  }
});
