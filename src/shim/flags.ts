/**
 * berth-shim's command line (Go-flag style, see cli.ts). Its own module without imports, so
 * that the long-lived `serve` process parses its flags without loading what `start` and
 * `delete` need (node:crypto, child_process).
 */

export interface ShimFlags {
  namespace: string;
  address: string;
  publishBinary: string;
  id: string;
  bundle: string;
  debug: boolean;
  socket: string;
  action: string;
}

const VALUE_FLAGS = new Set(['namespace', 'address', 'publish-binary', 'id', 'bundle', 'socket']);
const BOOL_FLAGS = new Set(['debug', 'v', 'version']);

/** Parse Go-style flags; the first non-flag argument is the action. */
export function parseFlags(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ShimFlags & { version: boolean } {
  const vals: Record<string, string> = {};
  const bools = new Set<string>();
  let action = '';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith('-') || a === '-' || a === '--') {
      if (!action && a !== '--') action = a;
      continue;
    }
    const body = a.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    if (VALUE_FLAGS.has(name)) {
      const v = eq >= 0 ? body.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new Error(`flag needs an argument: -${name}`);
      vals[name] = v;
    } else if (BOOL_FLAGS.has(name)) {
      const v = eq >= 0 ? body.slice(eq + 1) : 'true';
      if (v !== 'false' && v !== '0') bools.add(name);
    } else {
      throw new Error(`flag provided but not defined: -${name}`);
    }
  }
  return {
    namespace: vals['namespace'] ?? env.NAMESPACE ?? 'default',
    address: vals['address'] ?? env.GRPC_ADDRESS ?? '',
    publishBinary: vals['publish-binary'] ?? '',
    id: vals['id'] ?? '',
    bundle: vals['bundle'] ?? '',
    debug: bools.has('debug'),
    socket: vals['socket'] ?? '',
    action,
    version: bools.has('v') || bools.has('version'),
  };
}
