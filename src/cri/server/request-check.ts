/**
 * Checks every request at the edge, before its handler runs: each enum field (singular,
 * repeated or map value, at any depth) must hold a value its enum defines. protobuf keeps
 * unknown enum numbers as they came (open enums), so without this a mode 99 reached the
 * handlers as "some other mode". The error names the field by its proto path.
 */
import type { DescEnum, DescField, DescMessage } from '@bufbuild/protobuf';
import { errors } from '../../errors.js';

const MAX_DEPTH = 32;

function known(e: DescEnum, n: unknown): boolean {
  return typeof n === 'number' && e.values.some((v) => v.number === n);
}

function bad(path: string, n: unknown, e: DescEnum): never {
  throw errors.invalidArgument('request.bad_enum', `${path}: ${String(n)} is not a valid ${e.name}`);
}

function valueOf(field: DescField, msg: Record<string, unknown>): unknown {
  if (field.oneof) {
    const o = msg[field.oneof.localName] as { case?: string; value?: unknown } | undefined;
    return o?.case === field.localName ? o.value : undefined;
  }
  return msg[field.localName];
}

/** Throws InvalidArgument naming the first enum field whose value the enum does not define. */
export function checkEnums(desc: DescMessage, msg: unknown, path = '', depth = 0): void {
  if (msg === null || typeof msg !== 'object' || depth > MAX_DEPTH) return;
  const m = msg as Record<string, unknown>;
  for (const f of desc.fields) {
    const v = valueOf(f, m);
    if (v === undefined || v === null) continue;
    const p = path ? `${path}.${f.name}` : f.name;
    switch (f.fieldKind) {
      case 'enum':
        if (!known(f.enum, v)) bad(p, v, f.enum);
        break;
      case 'message':
        checkEnums(f.message, v, p, depth + 1);
        break;
      case 'list':
        if (f.listKind === 'enum') (v as unknown[]).forEach((x, i) => known(f.enum, x) || bad(`${p}[${i}]`, x, f.enum));
        else if (f.listKind === 'message') (v as unknown[]).forEach((x, i) => checkEnums(f.message, x, `${p}[${i}]`, depth + 1));
        break;
      case 'map':
        for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
          if (f.mapKind === 'enum' && !known(f.enum, x)) bad(`${p}[${JSON.stringify(k)}]`, x, f.enum);
          else if (f.mapKind === 'message') checkEnums(f.message, x, `${p}[${JSON.stringify(k)}]`, depth + 1);
        }
        break;
      default:
        break;
    }
  }
}
