/** Structured output for -o json / -o yaml (YAML goes through the same bigint-safe JSON). */
import { stringify as toYaml } from 'yaml';
import { toJson, type CliContext } from './common.js';

/** True when the user asked for a document rather than a table. */
export function wantsDocument(ctx: CliContext): boolean {
  return ctx.output === 'json' || ctx.output === 'yaml';
}

export function emitDocument(ctx: CliContext, doc: unknown): void {
  const json = toJson(doc);
  ctx.out(ctx.output === 'yaml' ? toYaml(JSON.parse(json) as unknown).trimEnd() : json);
}
