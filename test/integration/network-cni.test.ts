/**
 * Real CNI plugins (Debian's containernetworking-plugins) in real network namespaces.
 * Each test gets its own bridge (bt<tag>), network name, 198.18.x.0/24 subnet, host-local data
 * dir, netns dir and cache dir, and removes all of them (plus portmap's NAT rules and the
 * ip_forward setting the bridge plugin turns on for gateways) even when it fails.
 * Traffic goes only to 127.0.0.1 and to pod addresses inside these namespaces.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomInt } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { CniManager, CniPluginError, createNetns, listNetns, removeNetns } from '../../src/network/index.js';
import { logger } from '../../src/log.js';
import {
  cleanupNat,
  deleteLink,
  isRoot,
  linkExists,
  natChainExists,
  natRulesMentioning,
  removeSharedPortmapChains,
  run,
  startTcpServer,
  tcpRead,
  tcpReadFromNetns,
  testSubnet,
  uniqueTag,
} from '../helpers/netns.js';

const CNI_BIN = '/usr/lib/cni';
const skip = !isRoot() ? 'needs root' : !existsSync(join(CNI_BIN, 'bridge')) ? 'needs containernetworking-plugins' : false;

interface Fixture {
  tag: string;
  network: string;
  bridge: string;
  prefix: string;
  netnsDir: string;
  dataDir: string;
  cacheDir: string;
  mgr: CniManager;
  newNetns(): Promise<string>;
  reservedIps(): Promise<string[]>;
  cleanup(): Promise<void>;
}

/** `middle` plugins go between bridge and portmap; `binDir` extras are found before /usr/lib/cni. */
async function fixture(opts: { middle?: object[]; fakePlugins?: Record<string, string> } = {}): Promise<Fixture> {
  const tag = uniqueTag();
  const base = await mkdtemp(join(tmpdir(), 'berth-cni-it-'));
  const confDir = join(base, 'net.d');
  const binDir = join(base, 'bin');
  const dataDir = join(base, 'ipam');
  const cacheDir = join(base, 'cache');
  const netnsDir = join(base, 'netns');
  await mkdir(confDir);
  await mkdir(binDir);
  for (const [name, body] of Object.entries(opts.fakePlugins ?? {})) {
    await writeFile(join(binDir, name), body);
    await chmod(join(binDir, name), 0o755);
  }
  const { subnet, prefix, gateway } = testSubnet();
  const network = `berth-it-${tag}`;
  const bridge = `bt${tag}`;
  const hadPortmapChains = natChainExists('CNI-HOSTPORT-DNAT');
  const ipForward = (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim();
  const conf = {
    cniVersion: '1.0.0',
    name: network,
    plugins: [
      {
        type: 'bridge',
        bridge,
        isGateway: true,
        ipMasq: false,
        ipam: { type: 'host-local', ranges: [[{ subnet, gateway }]], dataDir },
      },
      ...(opts.middle ?? []),
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
      { type: 'loopback' },
    ],
  };
  await writeFile(join(confDir, '10-berth-test.conflist'), JSON.stringify(conf));
  const mgr = new CniManager({ confDir, binDirs: [binDir, CNI_BIN], cacheDir, logger: logger({ test: tag }), pluginTimeoutMs: 20_000 });
  return {
    tag,
    network,
    bridge,
    prefix,
    netnsDir,
    dataDir,
    cacheDir,
    mgr,
    newNetns: () => createNetns(`it-${tag}-${randomInt(1e9)}`, { dir: netnsDir }),
    async reservedIps() {
      try {
        return (await readdir(join(dataDir, network))).filter((n) => /^\d+\.\d+\.\d+\.\d+$/.test(n)).sort();
      } catch {
        return [];
      }
    },
    async cleanup() {
      for (const n of await listNetns(netnsDir).catch(() => [])) await removeNetns(join(netnsDir, n)).catch(() => undefined);
      if (existsSync(netnsDir)) run('umount', ['--lazy', netnsDir]);
      deleteLink(bridge);
      cleanupNat(network);
      if (!hadPortmapChains) removeSharedPortmapChains();
      await writeFile('/proc/sys/net/ipv4/ip_forward', ipForward);
      await rm(base, { recursive: true, force: true });
    },
  };
}

test('two pods get distinct IPs on the bridge subnet, reach each other, and teardown releases everything', { skip, timeout: 60_000 }, async () => {
  const f = await fixture();
  const servers: ChildProcess[] = [];
  try {
    const ns1 = await f.newNetns();
    const ns2 = await f.newNetns();
    const hostPort = 20000 + randomInt(20000);
    const r1 = await f.mgr.setupPod({
      id: `pod1${f.tag}`,
      netnsPath: ns1,
      podName: 'one',
      podNamespace: 'default',
      podUid: 'uid-1',
      portMappings: [
        { protocol: 'TCP', containerPort: 8080, hostPort, hostIp: '127.0.0.1' },
        { protocol: 'TCP', containerPort: 9090, hostPort: 0 },
      ],
    });
    const r2 = await f.mgr.setupPod({ id: `pod2${f.tag}`, netnsPath: ns2, podName: 'two', podNamespace: 'default', podUid: 'uid-2' });

    assert.equal(r1.network, f.network);
    assert.equal(r1.ips.length, 1);
    assert.equal(r2.ips.length, 1);
    const ip1 = r1.ips[0] as string;
    const ip2 = r2.ips[0] as string;
    assert.ok(ip1.startsWith(`${f.prefix}.`), ip1);
    assert.ok(ip2.startsWith(`${f.prefix}.`), ip2);
    assert.notEqual(ip1, ip2);
    assert.deepEqual(await f.reservedIps(), [ip1, ip2].sort());
    assert.ok(r1.interfaces.some((i) => i.name === 'eth0' && i.sandbox === ns1));
    assert.deepEqual(
      r1.spans.map((s) => `${s.plugin}:${s.command}:${s.ok}`),
      ['bridge:ADD:true', 'portmap:ADD:true', 'loopback:ADD:true'],
    );
    assert.ok(r1.spans.every((s) => s.durationMs > 0 && s.start > 0));
    assert.ok(linkExists(f.bridge));

    // Pod-to-pod over the bridge, and the host port (portmap) from the host's loopback.
    servers.push(await startTcpServer(ns1, '0.0.0.0', 8080, 'hello from pod1'));
    const direct = tcpReadFromNetns(ns2, ip1, 8080);
    assert.equal(direct.code, 0, direct.stderr);
    assert.equal(direct.stdout, 'hello from pod1');
    assert.equal(await tcpRead('127.0.0.1', hostPort), 'hello from pod1');
    assert.ok(natRulesMentioning(f.network).length > 0, 'portmap installed rules for the pod');

    await f.mgr.teardownPod({ id: `pod1${f.tag}`, netnsPath: ns1 });
    assert.deepEqual(natRulesMentioning(f.network), [], 'portmap rules are gone');
    assert.deepEqual(await f.reservedIps(), [ip2]);
    assert.equal(run('nsenter', [`--net=${ns1}`, 'ip', 'link', 'show', 'eth0']).code !== 0, true, 'eth0 removed from pod1');
    await assert.rejects(tcpRead('127.0.0.1', hostPort, 1000));

    // Idempotent: a second teardown (nothing cached any more) succeeds and changes nothing.
    await f.mgr.teardownPod({ id: `pod1${f.tag}`, netnsPath: ns1 });
    await f.mgr.teardownPod({ id: `pod2${f.tag}`, netnsPath: ns2 });
    assert.deepEqual(await f.reservedIps(), []);
    assert.deepEqual(await readdir(join(f.cacheDir, 'results')), []);
  } finally {
    for (const s of servers) s.kill('SIGKILL');
    await f.cleanup();
  }
});

test('a failing plugin in the chain fails ADD with its message and the rollback leaves no IP or veth', { skip, timeout: 60_000 }, async () => {
  const failer = `#!/bin/sh
cat >/dev/null
if [ "$CNI_COMMAND" = ADD ]; then
  echo '{"cniVersion":"1.0.0","code":142,"msg":"boom from failer","details":"injected by test"}'
  exit 1
fi
exit 0
`;
  const f = await fixture({ middle: [{ type: 'failer' }], fakePlugins: { failer } });
  try {
    const ns = await f.newNetns();
    const before = run('ip', ['-o', 'link']).stdout.split('\n').length;
    await assert.rejects(
      f.mgr.setupPod({
        id: `bad${f.tag}`,
        netnsPath: ns,
        podName: 'bad',
        podNamespace: 'default',
        podUid: 'u',
        portMappings: [{ protocol: 'TCP', containerPort: 80, hostPort: 20000 + randomInt(20000) }],
      }),
      (e: unknown) => {
        assert.ok(e instanceof CniPluginError);
        assert.equal(e.plugin, 'failer');
        assert.equal(e.cniCode, 142);
        assert.match(e.message, /failer.*ADD failed: boom from failer: injected by test/);
        return true;
      },
    );
    assert.deepEqual(await f.reservedIps(), [], 'host-local released the IP');
    assert.equal(run('nsenter', [`--net=${ns}`, 'ip', 'link', 'show', 'eth0']).code !== 0, true, 'no eth0 left in the pod');
    // Only the (now empty) bridge may remain on the host; no veth.
    assert.ok(run('ip', ['-o', 'link']).stdout.split('\n').length <= before + 1);
    assert.deepEqual(natRulesMentioning(f.network), []);
    assert.equal(existsSync(join(f.cacheDir, 'results', `${f.network}-bad${f.tag}-eth0`)), false);
  } finally {
    await f.cleanup();
  }
});

test('teardown after the netns is already gone still releases the IP and rules', { skip, timeout: 60_000 }, async () => {
  const f = await fixture();
  try {
    const ns = await f.newNetns();
    const id = `gone${f.tag}`;
    const r = await f.mgr.setupPod({
      id,
      netnsPath: ns,
      podName: 'gone',
      podNamespace: 'default',
      podUid: 'u',
      portMappings: [{ protocol: 'UDP', containerPort: 53, hostPort: 20000 + randomInt(20000) }],
    });
    assert.deepEqual(await f.reservedIps(), r.ips);
    await removeNetns(ns);
    await f.mgr.teardownPod({ id, netnsPath: ns });
    assert.deepEqual(await f.reservedIps(), []);
    assert.deepEqual(natRulesMentioning(f.network), []);
    await f.mgr.teardownPod({ id, netnsPath: ns });
  } finally {
    await f.cleanup();
  }
});

test('status is ready with the real plugins present and names a missing plugin otherwise', { skip }, async () => {
  const f = await fixture({ middle: [{ type: 'no-such-plugin' }] });
  try {
    const st = await f.mgr.status();
    assert.equal(st.ready, false);
    assert.equal(st.reason, 'NetworkPluginNotReady');
    assert.match(st.message ?? '', /no-such-plugin/);
  } finally {
    await f.cleanup();
  }
  const g = await fixture();
  try {
    assert.deepEqual(await g.mgr.status(), { ready: true, network: g.network });
  } finally {
    await g.cleanup();
  }
});
