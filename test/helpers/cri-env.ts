/**
 * A complete CRI test environment: a real registry holding the busybox and pause fixtures, a
 * CNI config (bridge + host-local on a unique 198.18.x.0/24, portmap, loopback; masquerade
 * off) in a temp conf dir, and a real berthd using both. cleanup() removes everything,
 * including pods berthd still holds, the bridge, NAT rules and the host-local data.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type TestRegistry } from './registry.js';
import { pushAllFixtures, type PushedFixture } from './images.js';
import { startBerthd, type BerthdOptions, type TestBerthd } from './berthd.js';
import { cleanupNat, deleteLink, removeSharedPortmapChains, testSubnet, uniqueTag } from './netns.js';

export interface CriEnv {
  registry: TestRegistry;
  berthd: TestBerthd;
  busybox: PushedFixture;
  pause: PushedFixture;
  /** Bridge name, subnet, and the gateway address. */
  net: { bridge: string; subnet: string; prefix: string; gateway: string; network: string };
  confDir: string;
  cleanup(): Promise<void>;
}

export interface CriEnvOptions extends BerthdOptions {
  /** No CNI config at all (NetworkReady false). */
  noCni?: boolean;
  /** Extra plugins inserted between bridge and portmap. */
  extraPlugins?: object[];
  /** Extra CNI bin dirs searched before /usr/lib/cni (e.g. for fake plugins). */
  cniBinDirs?: string[];
  /** Extra keys of berthd's [cni] table (e.g. `plugin_timeout = 3`). */
  cniToml?: string;
}

export async function startCriEnv(o: CriEnvOptions = {}): Promise<CriEnv> {
  const registry = await startRegistry();
  const fx = await pushAllFixtures(registry, { names: ['busybox', 'pause'] });
  const tag = uniqueTag();
  const { subnet, prefix, gateway } = testSubnet();
  const dir = mkdtempSync(join(tmpdir(), 'berth-cri-env-'));
  const confDir = join(dir, 'net.d');
  const dataDir = join(dir, 'ipam');
  mkdirSync(confDir);
  const bridge = `bb${tag}`.slice(0, 15);
  const network = `berth-test-${tag}`;
  if (!o.noCni) {
    writeFileSync(
      join(confDir, '10-berth-test.conflist'),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: network,
        plugins: [
          {
            type: 'bridge',
            bridge,
            isGateway: true,
            ipMasq: false,
            hairpinMode: true,
            ipam: { type: 'host-local', dataDir, ranges: [[{ subnet, gateway }]], routes: [{ dst: '0.0.0.0/0' }] },
          },
          ...(o.extraPlugins ?? []),
          { type: 'portmap', capabilities: { portMappings: true }, snat: true },
          { type: 'loopback' },
        ],
      }),
    );
  }
  // Top-level keys of o.extraToml (the lines before its first table header) go before [cni].
  const extra = o.extraToml ?? '';
  const header = /^\[/m.exec(extra)?.index ?? extra.length;
  const extraToml =
    `sandbox_image = "${fx.get('pause')!.ref}"\n` +
    extra.slice(0, header) +
    `[cni]\nbin_dirs = [${[...(o.cniBinDirs ?? []), '/usr/lib/cni'].map((d) => JSON.stringify(d)).join(', ')}]\nconf_dir = "${confDir}"\n` +
    (o.cniToml ?? '') +
    extra.slice(header);
  let berthd: TestBerthd;
  try {
    berthd = await startBerthd({ ...o, extraToml });
  } catch (err) {
    await registry.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    registry,
    berthd,
    busybox: fx.get('busybox')!,
    pause: fx.get('pause')!,
    net: { bridge, subnet, prefix, gateway, network },
    confDir,
    async cleanup() {
      // Remove every pod berthd still holds (stops containers, CNI DEL, netns), then stop it.
      try {
        const pods = await berthd.cri.runtime.listPodSandbox({});
        for (const p of pods.items) {
          await berthd.cri.runtime.stopPodSandbox({ podSandboxId: p.id }).catch(() => undefined);
          await berthd.cri.runtime.removePodSandbox({ podSandboxId: p.id }).catch(() => undefined);
        }
      } catch {
        /* daemon already gone */
      }
      await berthd.stop();
      // berthd makes its netns dir a (shared) bind mount of itself: unmount it before rm.
      spawnSync('umount', ['--lazy', join(berthd.state, 'netns')], { stdio: 'ignore' });
      await berthd.cleanup();
      await registry.stop();
      deleteLink(bridge);
      cleanupNat(network);
      removeSharedPortmapChains();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
