/**
 * Verb flag parsing for the CLI. node:util parseArgs cannot stop at the first positional
 * (`berth exec CTR sh -c 'x'` must hand `-c` to the command) nor collect `k=v` lists with
 * per-verb short names, so the verbs that need that use this small parser instead.
 *
 * Also understood everywhere: `-o/--output FORMAT` (sets ctx.output) and `-h/--help`
 * (throws HelpRequested so the launcher prints the verb's usage and exits 0).
 */
import { UsageError } from './common.js';

export type FlagType = 'boolean' | 'string' | 'strings';
export interface FlagDef {
  type: FlagType;
  short?: string;
}
export type FlagSpec = Record<string, FlagDef>;

type ValueOf<D extends FlagDef> = D['type'] extends 'boolean' ? boolean : D['type'] extends 'string' ? string | undefined : string[];
export type FlagValues<S extends FlagSpec> = { [K in keyof S]: ValueOf<S[K]> };

export interface ParsedFlags<S extends FlagSpec> {
  flags: FlagValues<S>;
  positionals: string[];
  /** Set when -o/--output appeared among the verb's arguments. */
  output?: string;
}

export class HelpRequested extends Error {
  constructor() {
    super('help requested');
  }
}

export interface ParseOptions {
  /** Everything from the first positional on is positional (command lines). */
  stopAtPositional?: boolean;
}

export function parseFlags<S extends FlagSpec>(args: readonly string[], spec: S, opts: ParseOptions = {}): ParsedFlags<S> {
  const values: Record<string, boolean | string | string[] | undefined> = {};
  const byShort = new Map<string, string>();
  for (const [name, def] of Object.entries(spec)) {
    values[name] = def.type === 'boolean' ? false : def.type === 'strings' ? [] : undefined;
    if (def.short) byShort.set(def.short, name);
  }
  const positionals: string[] = [];
  let output: string | undefined;

  const assign = (name: string, shown: string, inline: string | undefined, next: () => string | undefined): void => {
    const def = spec[name];
    if (!def) throw new UsageError(`unknown flag ${shown}`);
    if (def.type === 'boolean') {
      if (inline !== undefined) {
        if (inline !== 'true' && inline !== 'false') throw new UsageError(`${shown} takes no value (got ${JSON.stringify(inline)})`);
        values[name] = inline === 'true';
      } else values[name] = true;
      return;
    }
    const v = inline ?? next();
    if (v === undefined) throw new UsageError(`${shown} needs a value`);
    if (def.type === 'string') values[name] = v;
    else (values[name] as string[]).push(v);
  };

  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const next = (): string | undefined => (i + 1 < args.length ? args[++i] : undefined);
    if (a === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (a === '-' || !a.startsWith('-')) {
      if (opts.stopAtPositional) {
        positionals.push(...args.slice(i));
        break;
      }
      positionals.push(a);
      continue;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const inline = eq < 0 ? undefined : a.slice(eq + 1);
      if (name === 'help') throw new HelpRequested();
      if (name === 'output' && !spec.output) {
        output = inline ?? next();
        if (output === undefined) throw new UsageError('--output needs a value');
        continue;
      }
      assign(name, `--${name}`, inline, next);
      continue;
    }
    // Short flags: -abc is -a -b -c; a value-taking short flag eats the rest or the next arg.
    for (let j = 1; j < a.length; j++) {
      const ch = a[j]!;
      const name = byShort.get(ch);
      if (!name) {
        if (ch === 'h') throw new HelpRequested();
        if (ch === 'o') {
          output = j + 1 < a.length ? a.slice(j + 1) : next();
          if (output === undefined) throw new UsageError('-o needs a value');
          break;
        }
        throw new UsageError(`unknown flag -${ch}`);
      }
      if (spec[name]!.type === 'boolean') {
        values[name] = true;
        continue;
      }
      const rest = a.slice(j + 1);
      assign(name, `-${ch}`, rest === '' ? undefined : rest.replace(/^=/, ''), next);
      break;
    }
  }
  if (output !== undefined && !['table', 'json', 'yaml'].includes(output))
    throw new UsageError(`-o: unknown output format ${JSON.stringify(output)} (table, json, yaml)`);
  return { flags: values as FlagValues<S>, positionals, output };
}

/** `k=v` strings into a record; `what` names the flag in errors. */
export function keyValues(list: readonly string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new UsageError(`${what}: expected KEY=VALUE, got ${JSON.stringify(kv)}`);
    out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}

/** A non-negative integer flag value. */
export function intFlag(v: string | undefined, what: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v)) throw new UsageError(`${what}: expected a non-negative integer, got ${JSON.stringify(v)}`);
  return Number(v);
}
