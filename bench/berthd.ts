/**
 * Starts berthd (bin/berthd, compiled code in dist/) as a private instance with root, state and
 * socket under a temp dir and the loopback registry as a plain-http mirror of itself.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { berthdArgv, cleanupDir, launchDaemon, type DaemonHandle } from './daemon-util.js';

export interface BerthdOptions {
  registryHost: string;
  /** Repository root (holds bin/berthd). */
  repoRoot: string;
  parent?: string;
}

export function berthdConfig(dir: string, registryHost: string): string {
  const q = JSON.stringify;
  return `root = ${q(join(dir, 'root'))}
state = ${q(join(dir, 'state'))}
socket = ${q(join(dir, 'berth.sock'))}
sandbox_image = ${q(`${registryHost}/pause:latest`)}

[cni]
conf_dir = ${q(join(dir, 'cni'))}

[streaming]
address = "127.0.0.1:0"

[registry.mirrors.${q(registryHost)}]
endpoints = [${q(`http://${registryHost}`)}]
`;
}

export async function startBerthd(opts: BerthdOptions): Promise<DaemonHandle> {
  const dir = mkdtempSync(join(opts.parent ?? tmpdir(), 'bench-berthd-'));
  try {
    mkdirSync(join(dir, 'cni'));
    const configFile = join(dir, 'berthd.toml');
    writeFileSync(configFile, berthdConfig(dir, opts.registryHost));
    // BENCH_BERTHD_NODE_FLAGS profiles berthd (see berthdArgv).
    const [command, ...args] = berthdArgv(join(opts.repoRoot, 'bin', 'berthd'), ['--config', configFile]);
    return await launchDaemon({
      name: 'berth',
      dir,
      command: command!,
      args,
      socket: join(dir, 'berth.sock'),
      logName: 'berthd.log',
      cwd: opts.repoRoot,
    });
  } catch (err) {
    cleanupDir(dir);
    throw err;
  }
}
