import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseResult, podIps, ResultError } from '../../src/network/cni-result.js';
import { pluginFailure, type PluginExecRequest } from '../../src/network/cni-exec.js';

const v1 = {
  cniVersion: '1.0.0',
  interfaces: [
    { name: 'cni0', mac: '00:11:22:33:44:55' },
    { name: 'veth1', mac: '55:44:33:22:11:11' },
    { name: 'eth0', mac: '99:88:77:66:55:44', sandbox: '/run/berth/netns/p1' },
  ],
  ips: [
    { address: 'fd00::5/64', gateway: 'fd00::1', interface: 2 },
    { address: '198.18.4.5/24', gateway: '198.18.4.1', interface: 2 },
    { address: '198.18.4.1/24', interface: 0 },
  ],
  routes: [{ dst: '0.0.0.0/0', gw: '198.18.4.1' }],
  dns: { nameservers: ['198.18.4.1'], search: ['svc.local'] },
};

test('a 1.0 result parses interfaces, ips, routes and dns; pod IPs are the sandbox eth0 ones, IPv4 first', () => {
  const r = parseResult(v1);
  assert.equal(r.cniVersion, '1.0.0');
  assert.equal(r.interfaces[2]?.sandbox, '/run/berth/netns/p1');
  assert.deepEqual(r.routes, [{ dst: '0.0.0.0/0', gw: '198.18.4.1' }]);
  assert.deepEqual(r.dns, { nameservers: ['198.18.4.1'], search: ['svc.local'], options: [] });
  assert.deepEqual(podIps(r, 'eth0'), ['198.18.4.5', 'fd00::5']);
});

test('a 0.4.0 result with per-IP version fields parses the same way', () => {
  const r = parseResult({
    cniVersion: '0.4.0',
    interfaces: [{ name: 'eth0', sandbox: '/proc/1/ns/net' }],
    ips: [{ version: '4', address: '198.18.9.2/24', gateway: '198.18.9.1', interface: 0 }],
  });
  assert.deepEqual(r.ips, [{ address: '198.18.9.2/24', gateway: '198.18.9.1', interface: 0 }]);
  assert.deepEqual(podIps(r, 'eth0'), ['198.18.9.2']);
});

test('IPs without an interface index count as pod IPs; legacy 0.2.0 ip4 results are understood', () => {
  assert.deepEqual(podIps(parseResult({ cniVersion: '1.0.0', ips: [{ address: '198.18.1.2/24' }] }), 'eth0'), ['198.18.1.2']);
  const legacy = parseResult({ cniVersion: '0.2.0', ip4: { ip: '198.18.2.3/24', gateway: '198.18.2.1', routes: [{ dst: '0.0.0.0/0' }] } });
  assert.deepEqual(podIps(legacy, 'eth0'), ['198.18.2.3']);
  assert.deepEqual(legacy.routes, [{ dst: '0.0.0.0/0' }]);
});

test('malformed results are rejected', () => {
  assert.throws(() => parseResult('x'), ResultError);
  assert.throws(() => parseResult({ cniVersion: '1.0.0', ips: [{ address: '198.18.0.2/24', interface: 3 }] }), /interface index 3/);
  assert.throws(() => parseResult({ cniVersion: '1.0.0', ips: [{}] }), /ip without address/);
  assert.throws(() => parseResult({ cniVersion: '1.0.0', interfaces: {} }), /interfaces is not a list/);
});

const req: PluginExecRequest = { plugin: 'bridge', path: '/x/bridge', command: 'ADD', cniEnv: {}, stdin: '', timeoutMs: 1, network: 'net' };

test('a plugin error on stdout becomes an error naming the plugin, its message, details and code', () => {
  const e = pluginFailure(req, 'exit status 1', JSON.stringify({ cniVersion: '1.0.0', code: 7, msg: 'bad config', details: 'no bridge name' }), 'log noise');
  assert.equal(e.message, 'CNI plugin bridge (network net) ADD failed: bad config: no bridge name (code 7)');
  assert.equal(e.kind, 'FailedPrecondition');
  assert.equal(e.cniCode, 7);
  assert.equal(e.plugin, 'bridge');
});

test('try-again-later maps to Unavailable; unstructured failures fall back to stderr', () => {
  assert.equal(pluginFailure(req, 'exit status 1', JSON.stringify({ code: 11, msg: 'busy' }), '').kind, 'Unavailable');
  const e = pluginFailure(req, 'exit status 2', 'not json', 'panic: oh no\n');
  assert.equal(e.kind, 'Internal');
  assert.match(e.message, /ADD failed: panic: oh no$/);
  assert.match(pluginFailure(req, 'killed by SIGSEGV', '', '').message, /killed by SIGSEGV/);
});
