/**
 * Starts Debian's containerd as a private instance (own root, state and sockets under a temp
 * dir) with the CRI plugin on and the loopback test registry reachable over plain http
 * through a hosts.toml in registry.config_path.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupDir, launchDaemon, type DaemonHandle } from './daemon-util.js';

export interface ContainerdOptions {
  /** '127.0.0.1:PORT' of the plain-http registry. */
  registryHost: string;
  binary?: string;
  /** Parent directory of the temp dir (default os.tmpdir()). */
  parent?: string;
}

export function containerdConfig(dir: string, registryHost: string): string {
  const q = JSON.stringify;
  return `version = 2
root = ${q(join(dir, 'root'))}
state = ${q(join(dir, 'state'))}
# Plugins that need kernel features or host paths this machine does not offer.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = ${q(join(dir, 'containerd.sock'))}

[ttrpc]
  address = ${q(join(dir, 'containerd.sock.ttrpc'))}

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = ${q(join(dir, 'opt'))}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ${q(`${registryHost}/pause:latest`)}
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_cdi = false

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = ${q(join(dir, 'cni'))}

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ${q(join(dir, 'certs.d'))}
`;
}

export function hostsToml(registryHost: string): string {
  return `server = "http://${registryHost}"

[host."http://${registryHost}"]
  capabilities = ["pull", "resolve"]
`;
}

export async function startContainerd(opts: ContainerdOptions): Promise<DaemonHandle> {
  const dir = mkdtempSync(join(opts.parent ?? tmpdir(), 'bench-containerd-'));
  try {
    mkdirSync(join(dir, 'cni'));
    mkdirSync(join(dir, 'certs.d', opts.registryHost), { recursive: true });
    writeFileSync(join(dir, 'certs.d', opts.registryHost, 'hosts.toml'), hostsToml(opts.registryHost));
    const configFile = join(dir, 'config.toml');
    writeFileSync(configFile, containerdConfig(dir, opts.registryHost));
    return await launchDaemon({
      name: 'containerd',
      dir,
      command: opts.binary ?? 'containerd',
      args: ['--config', configFile],
      socket: join(dir, 'containerd.sock'),
      logName: 'containerd.log',
    });
  } catch (err) {
    cleanupDir(dir);
    throw err;
  }
}
