import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildCniArgs, pluginStdin, podArgs, runtimeConfigFor, toCniPortMappings } from '../../src/network/cni-args.js';
import { isBerthError } from '../../src/errors.js';
import type { NetworkConfigList } from '../../src/network/cni-config.js';

test('CNI_ARGS carries IgnoreUnknown and the Kubernetes pod identity in order', () => {
  const s = buildCniArgs(podArgs({ podNamespace: 'kube-system', podName: 'coredns-1', id: 'abc123', podUid: 'u-1' }));
  assert.equal(s, 'IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-1;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=u-1');
});

test('a CNI_ARGS value cannot smuggle in another key', () => {
  for (const v of ['x;IP=198.18.0.9', 'a=b', 'line\nbreak']) {
    assert.throws(
      () => buildCniArgs([['K8S_POD_NAME', v]]),
      (e: unknown) => isBerthError(e, 'InvalidArgument'),
    );
  }
  assert.throws(
    () => buildCniArgs([['BAD KEY', 'v']]),
    (e: unknown) => isBerthError(e, 'InvalidArgument'),
  );
});

test('only port mappings with a host port reach portmap, protocol lower-cased, hostIP only when set', () => {
  assert.deepEqual(
    toCniPortMappings([
      { protocol: 'TCP', containerPort: 80, hostPort: 8080 },
      { protocol: 'UDP', containerPort: 53, hostPort: 5353, hostIp: '127.0.0.1' },
      { protocol: 'SCTP', containerPort: 9, hostPort: 0 },
      { containerPort: 81, hostPort: 8081 },
    ]),
    [
      { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      { hostPort: 5353, containerPort: 53, protocol: 'udp', hostIP: '127.0.0.1' },
      { hostPort: 8081, containerPort: 81, protocol: 'tcp' },
    ],
  );
  assert.throws(() => toCniPortMappings([{ protocol: 'TCP', containerPort: 0, hostPort: 80 }]), /out of range/);
  assert.throws(() => toCniPortMappings([{ protocol: 'TCP', containerPort: 80, hostPort: 70000 }]), /out of range/);
  assert.throws(() => toCniPortMappings([{ protocol: 'ICMP', containerPort: 80, hostPort: 80 }]), /not TCP, UDP or SCTP/);
});

test('runtimeConfig holds only the capabilities a plugin declares as true', () => {
  const args = { portMappings: [{ hostPort: 1, containerPort: 1, protocol: 'tcp' }], bandwidth: { ingressRate: 1 }, dns: undefined };
  assert.equal(runtimeConfigFor({ type: 'bridge' }, args), undefined);
  assert.deepEqual(runtimeConfigFor({ type: 'portmap', capabilities: { portMappings: true, bandwidth: false, dns: true } }, args), {
    portMappings: args.portMappings,
  });
});

test('plugin stdin takes name and cniVersion from the list and adds prevResult only when given', () => {
  const list: NetworkConfigList = { name: 'net', cniVersion: '1.0.0', disableCheck: false, source: 'x', plugins: [] };
  const plugin = { type: 'portmap', name: 'other', cniVersion: '0.3.1', capabilities: { portMappings: true }, snat: true };
  const first = JSON.parse(pluginStdin(list, plugin, {}, undefined)) as Record<string, unknown>;
  assert.equal(first['name'], 'net');
  assert.equal(first['cniVersion'], '1.0.0');
  assert.equal(first['snat'], true);
  assert.equal('prevResult' in first, false);
  assert.equal('runtimeConfig' in first, false);
  const prev = { cniVersion: '1.0.0', ips: [] };
  const pm = [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }];
  const second = JSON.parse(pluginStdin(list, plugin, { portMappings: pm }, prev)) as Record<string, unknown>;
  assert.deepEqual(second['prevResult'], prev);
  assert.deepEqual(second['runtimeConfig'], { portMappings: pm });
});
