/** Glue between a verb and parseFlags: applies a verb-level -o to the context. */
import type { CliContext } from './common.js';
import { parseFlags, type FlagSpec, type ParsedFlags, type ParseOptions } from './flags.js';

export function verbArgs<S extends FlagSpec>(args: readonly string[], spec: S, ctx: CliContext, opts?: ParseOptions): ParsedFlags<S> {
  const p = parseFlags(args, spec, opts);
  if (p.output) ctx.output = p.output as CliContext['output'];
  return p;
}
