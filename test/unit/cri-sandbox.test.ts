import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { PodSandboxConfigSchema, NamespaceMode, Protocol } from '../../src/api/cri/runtime/v1/api_pb.js';
import { hostsText, resolvConfText, sandboxPaths, validateDns } from '../../src/cri/sandbox/files.js';
import { isHostIpc, isHostNetwork, sandboxName } from '../../src/cri/sandbox/common.js';
import { validateSandboxConfig } from '../../src/cri/sandbox/run.js';
import { portMappingsOf } from '../../src/cri/sandbox/teardown.js';
import { isBerthError } from '../../src/errors.js';

const cfg = (init: Parameters<typeof create<typeof PodSandboxConfigSchema>>[1]) => create(PodSandboxConfigSchema, init);
const invalidNaming = (field: string) => (e: unknown) => isBerthError(e, 'InvalidArgument') && e.message.includes(field);

test('sandbox names follow k8s_POD_<name>_<namespace>_<uid>_<attempt>', () => {
  assert.equal(sandboxName({ name: 'web', namespace: 'default', uid: 'u1', attempt: 2 }), 'k8s_POD_web_default_u1_2');
});

test('resolv.conf from a DNS config has search, nameserver and options lines', () => {
  assert.equal(
    resolvConfText({ servers: ['10.0.0.10', '10.0.0.11'], searches: ['a.svc', 'svc'], options: ['ndots:5'] }),
    'search a.svc svc\nnameserver 10.0.0.10\nnameserver 10.0.0.11\noptions ndots:5\n',
  );
  assert.equal(resolvConfText({ servers: [], searches: [], options: [] }), '');
});

test('DNS values with line breaks are rejected naming the field', () => {
  assert.throws(() => validateDns(cfg({ dnsConfig: { servers: ['1.1.1.1\nnameserver 6.6.6.6'] } }).dnsConfig), invalidNaming('config.dns_config.servers[0]'));
  assert.throws(() => validateDns(cfg({ dnsConfig: { options: ['ok', ''] } }).dnsConfig), invalidNaming('config.dns_config.options[1]'));
  validateDns(cfg({ dnsConfig: { servers: ['198.18.0.53'], searches: ['x'], options: ['ndots:2'] } }).dnsConfig);
  validateDns(undefined);
});

test('the hosts file maps the pod IP to the hostname', () => {
  const t = hostsText('198.18.4.7', 'web-0');
  assert.match(t, /^127\.0\.0\.1\tlocalhost$/m);
  assert.match(t, /^198\.18\.4\.7\tweb-0$/m);
  assert.doesNotMatch(hostsText(undefined, 'web-0'), /web-0/);
});

test('config validation names the missing metadata field', () => {
  assert.throws(() => validateSandboxConfig(undefined), invalidNaming('config is required'));
  assert.throws(() => validateSandboxConfig(cfg({})), invalidNaming('config.metadata'));
  assert.throws(() => validateSandboxConfig(cfg({ metadata: { namespace: 'n', uid: 'u' } })), invalidNaming('config.metadata.name'));
  assert.throws(() => validateSandboxConfig(cfg({ metadata: { name: 'x', uid: 'u' } })), invalidNaming('config.metadata.namespace'));
  assert.throws(() => validateSandboxConfig(cfg({ metadata: { name: 'x', namespace: 'n' } })), invalidNaming('config.metadata.uid'));
  assert.throws(
    () => validateSandboxConfig(cfg({ metadata: { name: 'x', namespace: 'n', uid: 'u' }, portMappings: [{ containerPort: 80, hostPort: 70000 }] })),
    invalidNaming('config.port_mappings[0]'),
  );
  validateSandboxConfig(cfg({ metadata: { name: 'x', namespace: 'n', uid: 'u' } }));
});

test('host network / IPC come from the pod namespace options', () => {
  const host = cfg({ linux: { securityContext: { namespaceOptions: { network: NamespaceMode.NODE, ipc: NamespaceMode.NODE } } } });
  assert.ok(isHostNetwork(host) && isHostIpc(host));
  const pod = cfg({});
  assert.ok(!isHostNetwork(pod) && !isHostIpc(pod));
});

test('port mappings become CNI mappings with the protocol name', () => {
  const c = cfg({ portMappings: [{ protocol: Protocol.UDP, containerPort: 53, hostPort: 5353, hostIp: '127.0.0.1' }, { containerPort: 80 }] });
  assert.deepEqual(portMappingsOf(c), [
    { protocol: 'UDP', containerPort: 53, hostPort: 5353, hostIp: '127.0.0.1' },
    { protocol: 'TCP', containerPort: 80, hostPort: 0, hostIp: undefined },
  ]);
});

test('sandbox files live under root, the shm mount under state', () => {
  const p = sandboxPaths({ root: '/var/lib/berth', state: '/run/berth' }, 'abc');
  assert.equal(p.resolvConfPath, '/var/lib/berth/sandboxes/abc/resolv.conf');
  assert.equal(p.hostsPath, '/var/lib/berth/sandboxes/abc/hosts');
  assert.equal(p.hostnamePath, '/var/lib/berth/sandboxes/abc/hostname');
  assert.equal(p.shmPath, '/run/berth/sandboxes/abc/shm');
});
