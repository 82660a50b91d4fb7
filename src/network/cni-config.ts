/**
 * CNI network configuration loading (CNI spec section 1: configuration format).
 *
 * The default network is the first file of conf_dir, in lexical order, with extension
 * .conflist (a list) or .conf / .json (a single plugin config wrapped into a one-plugin list),
 * as kubelet and containerd pick it. Files that fail to parse or validate are skipped with a
 * reason, so one broken file does not take the node's network down; when no file is usable
 * the error lists every file and why it was rejected.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { errors } from '../errors.js';

/** Spec versions a configuration may declare (plugins reject the ones they lack, code 1). */
export const KNOWN_CNI_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;

const NETWORK_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** A plugin type is a file name in a bin dir: no path separators, no dot-dot tricks. */
const PLUGIN_TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/;
const MAX_CONFIG_BYTES = 1 << 20;
export const CONFIG_EXTENSIONS = ['.conf', '.conflist', '.json'] as const;

export interface PluginConfig {
  type: string;
  /** Capabilities the plugin declares; only these keys are sent in runtimeConfig. */
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

export interface NetworkConfigList {
  name: string;
  cniVersion: string;
  disableCheck: boolean;
  plugins: PluginConfig[];
  /** File the list came from (for messages), or "<inline>" / "<cache>". */
  source: string;
}

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    reason: string,
  ) {
    super(`${source}: ${reason}`);
    this.name = 'ConfigError';
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkVersion(v: unknown, source: string, where: string): string {
  if (typeof v !== 'string' || v === '') throw new ConfigError(source, `${where}cniVersion is missing`);
  if (!(KNOWN_CNI_VERSIONS as readonly string[]).includes(v)) {
    throw new ConfigError(source, `${where}cniVersion ${JSON.stringify(v)} is not a known CNI spec version (${KNOWN_CNI_VERSIONS.join(', ')})`);
  }
  return v;
}

function checkName(v: unknown, source: string): string {
  if (typeof v !== 'string' || v === '') throw new ConfigError(source, 'network name is missing');
  if (!NETWORK_NAME_RE.test(v)) throw new ConfigError(source, `network name ${JSON.stringify(v)} has invalid characters`);
  return v;
}

function checkPlugin(v: unknown, source: string, index: number): PluginConfig {
  if (!isObject(v)) throw new ConfigError(source, `plugins[${index}] is not an object`);
  const type = v['type'];
  if (typeof type !== 'string' || type === '') throw new ConfigError(source, `plugins[${index}] has no type`);
  if (!PLUGIN_TYPE_RE.test(type) || type.includes('..')) {
    throw new ConfigError(source, `plugins[${index}] type ${JSON.stringify(type)} is not a plain file name`);
  }
  const caps = v['capabilities'];
  if (caps !== undefined && !isObject(caps)) throw new ConfigError(source, `plugins[${index}].capabilities is not an object`);
  return v as PluginConfig;
}

function parseJson(text: string, source: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(source, `invalid JSON: ${(err as Error).message}`);
  }
  if (!isObject(doc)) throw new ConfigError(source, 'top level is not a JSON object');
  return doc;
}

/** Parses a .conflist document. Throws ConfigError naming `source`. */
export function parseConfigList(text: string, source = '<inline>'): NetworkConfigList {
  const doc = parseJson(text, source);
  const name = checkName(doc['name'], source);
  const cniVersion = checkVersion(doc['cniVersion'], source, '');
  const plugins = doc['plugins'];
  if (!Array.isArray(plugins)) throw new ConfigError(source, 'plugins is missing or not a list');
  if (plugins.length === 0) throw new ConfigError(source, 'plugins is empty');
  const dc = doc['disableCheck'];
  // The spec writes disableCheck as a string in places; accept both spellings of true.
  const disableCheck = dc === true || dc === 'true';
  return { name, cniVersion, disableCheck, plugins: plugins.map((p, i) => checkPlugin(p, source, i)), source };
}

/** Parses a single-plugin .conf/.json document and wraps it into a list. */
export function parseSingleConfig(text: string, source = '<inline>'): NetworkConfigList {
  const doc = parseJson(text, source);
  if (Array.isArray(doc['plugins'])) return parseConfigList(text, source);
  const name = checkName(doc['name'], source);
  const cniVersion = checkVersion(doc['cniVersion'], source, '');
  const plugin = checkPlugin(doc, source, 0);
  return { name, cniVersion, disableCheck: false, plugins: [plugin], source };
}

export function parseConfigFile(text: string, fileName: string): NetworkConfigList {
  return fileName.endsWith('.conflist') ? parseConfigList(text, fileName) : parseSingleConfig(text, fileName);
}

export interface LoadResult {
  /** The default network, or undefined when none of the files is usable. */
  network?: NetworkConfigList;
  /** Files skipped and why (message names the file). */
  rejected: string[];
}

/** Reads conf_dir and picks the default network. Never throws for a missing dir. */
export async function loadConfigDir(confDir: string): Promise<LoadResult> {
  let names: string[];
  try {
    names = await readdir(confDir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { rejected: [] };
    throw errors.internal('cni.config_read_failed', `read CNI config dir ${confDir}: ${(err as Error).message}`, err);
  }
  const candidates = names.filter((n) => CONFIG_EXTENSIONS.some((e) => n.endsWith(e))).sort();
  const rejected: string[] = [];
  for (const n of candidates) {
    const file = join(confDir, n);
    try {
      const st = await stat(file);
      if (!st.isFile()) continue;
      if (st.size > MAX_CONFIG_BYTES) throw new ConfigError(file, `larger than ${MAX_CONFIG_BYTES} bytes`);
      const text = await readFile(file, 'utf8');
      return { network: parseConfigFile(text, file), rejected };
    } catch (err) {
      if (err instanceof ConfigError) rejected.push(err.message);
      else rejected.push(`${file}: ${(err as Error).message}`);
    }
  }
  return { rejected };
}

/** Compares dotted versions numerically: -1, 0, 1. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split('.').map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}
