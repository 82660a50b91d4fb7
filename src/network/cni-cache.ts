/**
 * Cache of ADD results, like libcni's results dir: one JSON file per attachment at
 * `<cacheDir>/results/<network>-<containerId>-<ifName>`. It keeps the result (DEL and CHECK
 * must get it as prevResult), the exact network config, CNI_ARGS and capability args used at
 * ADD time, so teardown repeats what setup did even if conf_dir changed or vanished since.
 * Files are written to a temp name and renamed, so a crash never leaves half a record.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errors } from '../errors.js';
import type { NetworkConfigList } from './cni-config.js';

export interface CacheEntry {
  kind: 'berthCniCacheV1';
  containerId: string;
  ifName: string;
  networkName: string;
  netnsPath: string;
  config: NetworkConfigList;
  cniArgs: Array<[string, string]>;
  capabilityArgs: Record<string, unknown>;
  /** Raw final ADD result, as the last plugin printed it. */
  result: unknown;
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Ids and names become file names: refuse anything that could escape the dir. */
export function checkCacheKey(what: string, v: string): void {
  if (!ID_RE.test(v) || v.length > 253) throw errors.invalidArgument('cni.bad_id', `${what} ${JSON.stringify(v)} is not a valid identifier`);
}

export class ResultCache {
  private readonly dir: string;

  constructor(cacheDir: string) {
    this.dir = join(cacheDir, 'results');
  }

  private file(network: string, id: string, ifName: string): string {
    checkCacheKey('network name', network);
    checkCacheKey('container id', id);
    checkCacheKey('interface name', ifName);
    return join(this.dir, `${network}-${id}-${ifName}`);
  }

  async write(e: CacheEntry): Promise<void> {
    const f = this.file(e.networkName, e.containerId, e.ifName);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${f}.tmp-${process.pid}-${Date.now()}`;
    await writeFile(tmp, JSON.stringify(e), { mode: 0o600 });
    await rename(tmp, f);
  }

  async read(network: string, id: string, ifName: string): Promise<CacheEntry | undefined> {
    let text: string;
    try {
      text = await readFile(this.file(network, id, ifName), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const e = JSON.parse(text) as CacheEntry;
    return e.kind === 'berthCniCacheV1' && e.containerId === id ? e : undefined;
  }

  /** Every cached attachment of a container (any network), found by file-name suffix. */
  async findByContainer(id: string, ifName: string): Promise<CacheEntry[]> {
    checkCacheKey('container id', id);
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const suffix = `-${id}-${ifName}`;
    const out: CacheEntry[] = [];
    for (const n of names.filter((x) => x.endsWith(suffix)).sort()) {
      try {
        const e = JSON.parse(await readFile(join(this.dir, n), 'utf8')) as CacheEntry;
        // The suffix match alone could hit a network named "x-<id>"; trust the contents.
        if (e.kind === 'berthCniCacheV1' && e.containerId === id && e.ifName === ifName && n === `${e.networkName}${suffix}`) out.push(e);
      } catch {
        // Unreadable or half-written leftovers are ignored; the next write replaces them.
      }
    }
    return out;
  }

  async remove(network: string, id: string, ifName: string): Promise<void> {
    await rm(this.file(network, id, ifName), { force: true });
  }
}
