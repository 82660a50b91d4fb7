import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { SecurityProfile_ProfileType, SecurityProfileSchema } from '../../src/api/cri/runtime/v1/api_pb.js';
import { isBerthError } from '../../src/errors.js';
import { DEFAULT_CAPABILITIES } from '../../src/oci/capabilities.js';
import { defaultSeccompProfile } from '../../src/oci/seccomp-default.js';
import { buildSeccomp, seccompChoice, validateSeccompProfile } from '../../src/oci/seccomp.js';

const allowed = (p: ReturnType<typeof defaultSeccompProfile>): Set<string> =>
  new Set(p.syscalls!.filter((s) => s.action === 'SCMP_ACT_ALLOW' && !s.args).flatMap((s) => s.names));

test('default profile denies with EPERM and lists the amd64 architectures', () => {
  const p = defaultSeccompProfile(DEFAULT_CAPABILITIES, 'amd64');
  assert.equal(p.defaultAction, 'SCMP_ACT_ERRNO');
  assert.equal(p.defaultErrnoRet, 1);
  assert.deepEqual(p.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
  const a = allowed(p);
  for (const s of ['read', 'write', 'execve', 'arch_prctl', 'chroot', 'io_uring_setup']) assert.ok(a.has(s), s);
  for (const s of ['mount', 'unshare', 'setns', 'bpf', 'reboot', 'kexec_load', 'init_module', 'open_by_handle_at']) assert.ok(!a.has(s), s);
});

test('default profile on arm64 lists arm architectures and arm syscalls', () => {
  const p = defaultSeccompProfile(DEFAULT_CAPABILITIES, 'arm64');
  assert.deepEqual(p.architectures, ['SCMP_ARCH_ARM', 'SCMP_ARCH_AARCH64']);
  assert.ok(allowed(p).has('set_tls'));
  assert.ok(!allowed(p).has('arch_prctl'));
});

test('without CAP_SYS_ADMIN clone may not create namespaces and clone3 gets ENOSYS', () => {
  const p = defaultSeccompProfile(DEFAULT_CAPABILITIES, 'amd64');
  const clone = p.syscalls!.find((s) => s.names.includes('clone'));
  assert.deepEqual(clone?.args, [{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }]);
  const clone3 = p.syscalls!.find((s) => s.names.includes('clone3'));
  assert.equal(clone3?.action, 'SCMP_ACT_ERRNO');
  assert.equal(clone3?.errnoRet, 38);
});

test('capabilities in the bounding set unlock their syscalls', () => {
  const p = defaultSeccompProfile([...DEFAULT_CAPABILITIES, 'CAP_SYS_ADMIN', 'CAP_SYS_TIME'], 'amd64');
  const a = allowed(p);
  for (const s of ['mount', 'unshare', 'setns', 'clone', 'clone3', 'settimeofday']) assert.ok(a.has(s), s);
  assert.ok(!p.syscalls!.some((s) => s.action === 'SCMP_ACT_ERRNO'));
});

test('each call returns a fresh profile', () => {
  const a = defaultSeccompProfile(DEFAULT_CAPABILITIES, 'amd64');
  a.syscalls![0]!.names.push('kexec_load');
  assert.ok(!allowed(defaultSeccompProfile(DEFAULT_CAPABILITIES, 'amd64')).has('kexec_load'));
});

test('seccomp choice table', () => {
  const sp = (profileType: SecurityProfile_ProfileType, localhostRef = '') => create(SecurityProfileSchema, { profileType, localhostRef });
  const cases: Array<[Parameters<typeof seccompChoice>[0], string | undefined, unknown]> = [
    [undefined, undefined, { kind: 'unconfined' }],
    [{}, 'runtime/default', { kind: 'runtime-default' }],
    [{ seccompProfilePath: 'runtime/default' }, undefined, { kind: 'runtime-default' }],
    [{ seccompProfilePath: 'docker/default' }, undefined, { kind: 'runtime-default' }],
    [{ seccompProfilePath: 'unconfined' }, 'runtime/default', { kind: 'unconfined' }],
    [{ seccompProfilePath: 'localhost//var/lib/kubelet/seccomp/a.json' }, undefined, { kind: 'localhost', path: '/var/lib/kubelet/seccomp/a.json' }],
    [{ seccomp: sp(SecurityProfile_ProfileType.RuntimeDefault) }, undefined, { kind: 'runtime-default' }],
    [{ seccomp: sp(SecurityProfile_ProfileType.Unconfined) }, 'runtime/default', { kind: 'unconfined' }],
    [{ seccomp: sp(SecurityProfile_ProfileType.Localhost, '/p/a.json') }, undefined, { kind: 'localhost', path: '/p/a.json' }],
    // The message wins over the deprecated path string.
    [{ seccomp: sp(SecurityProfile_ProfileType.Unconfined), seccompProfilePath: 'runtime/default' }, undefined, { kind: 'unconfined' }],
    [{ privileged: true, seccomp: sp(SecurityProfile_ProfileType.RuntimeDefault) }, undefined, { kind: 'unconfined' }],
  ];
  for (const [sc, unset, want] of cases)
    assert.deepEqual(
      seccompChoice(sc, 'f', unset),
      want,
      JSON.stringify([sc, unset], (_, v) => (typeof v === 'bigint' ? String(v) : v)),
    );
});

test('invalid seccomp settings are InvalidArgument', () => {
  const bad = [
    { seccompProfilePath: 'bogus' },
    { seccompProfilePath: 'localhost/relative.json' },
    { seccomp: create(SecurityProfileSchema, { profileType: SecurityProfile_ProfileType.RuntimeDefault, localhostRef: '/x' }) },
  ];
  for (const sc of bad)
    assert.throws(
      () => seccompChoice(sc, 'container config: linux.security_context'),
      (e) => isBerthError(e, 'InvalidArgument') && e.message.includes('linux.security_context'),
    );
});

test('a localhost profile must be supplied and well-formed', () => {
  assert.throws(
    () => buildSeccomp({ kind: 'localhost', path: '/p.json' }, [], {}, 'f'),
    (e) => isBerthError(e, 'InvalidArgument') && /not loaded/.test(e.message),
  );
  const good = {
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [{ names: ['kexec_load'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }] }],
    extra: 1,
  };
  assert.deepEqual(validateSeccompProfile(good), {
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [{ names: ['kexec_load'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }] }],
  });
  for (const bad of [null, [], { defaultAction: 'ALLOW' }, { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: [], action: 'SCMP_ACT_ALLOW' }] }]) {
    assert.throws(
      () => validateSeccompProfile(bad),
      (e) => isBerthError(e, 'InvalidArgument'),
    );
  }
});

test('seccomp disabled on the node: only unconfined is accepted', () => {
  assert.equal(buildSeccomp({ kind: 'unconfined' }, [], { seccompEnabled: false }, 'f'), undefined);
  assert.throws(
    () => buildSeccomp({ kind: 'runtime-default' }, [], { seccompEnabled: false }, 'f'),
    (e) => isBerthError(e, 'InvalidArgument'),
  );
});
