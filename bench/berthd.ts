/**
 * Starts berthd (bin/berthd, compiled code in dist/) as a private instance with root, state and
 * socket under a temp dir and the loopback registry as a plain-http mirror of itself.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupDir, stopProcess, waitForCri, type DaemonHandle } from './daemon-util.js';

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
    const logFile = join(dir, 'berthd.log');
    const fd = openSync(logFile, 'a');
    const child = spawn(process.execPath, [join(opts.repoRoot, 'bin', 'berthd'), '--config', configFile], {
      stdio: ['ignore', fd, fd],
      cwd: opts.repoRoot,
    });
    closeSync(fd);
    child.once('error', () => undefined);
    const socket = join(dir, 'berth.sock');
    const stop = async (): Promise<void> => {
      await stopProcess(child);
      cleanupDir(dir);
    };
    try {
      await waitForCri(socket, child, logFile);
    } catch (err) {
      await stop();
      throw err;
    }
    return { name: 'berth', socket, pid: child.pid ?? 0, dir, logFile, stop };
  } catch (err) {
    cleanupDir(dir);
    throw err;
  }
}
