/**
 * protoc-gen-lean: a protoc/buf plugin that writes the messages of chosen .proto files as
 * tables for berth's small wire codec (src/ttrpc/pb.ts), with a TS interface per message and a
 * const object per enum, into ONE module (default src/api/shim_lean.ts) holding a TS namespace
 * per proto package (`containerd.task.v2.CreateTaskRequestS`, `containerd.types.Mount`).
 *
 * Why it exists: berth-shim must not load @bufbuild/protobuf (~7 MiB per process, see pb.ts),
 * yet field numbers and kinds must come from the .proto files, not be typed by hand. The
 * generated module imports nothing but pb.ts.
 * Why one module and not a `<file>_lean.ts` beside each `<file>_pb.ts`: every ES module a
 * Node process loads costs it ~50 KiB of anonymous memory (measured on Node 20); the eight
 * files the shim needs would add ~0.45 MiB to every shim. Namespaces keep proto scoping
 * (v1 and v2 cgroup metrics both have a `Metrics`) inside one module.
 *
 * Options (buf.gen.yaml `opt:`):
 *   lean=<proto path>   a file to emit (repeatable); the files it imports come along.
 *   file=<name>         the output module, relative to the output root (default shim_lean.ts).
 *   codec=<path>        pb.ts as a path relative to the output root (default ../ttrpc/pb.js).
 * Anything pb.ts cannot represent (floats, fixed/sint ints, oneofs, explicit presence,
 * non-string maps, recursive messages, other well-known types) stops generation with an error
 * rather than producing a table that would mis-encode.
 *
 * Run by `npm run gen` through buf: `local: [node, --import, tsx, scripts/protoc-gen-lean.ts]`.
 */
import {
  createEcmaScriptPlugin,
  getComments,
  runNodeJs,
  safeIdentifier,
  type GeneratedFile,
  type ImportSymbol,
  type Printable,
  type Schema,
} from '@bufbuild/protoplugin';

// Descriptor types as protoplugin hands them out. protoplugin pins its own copy of
// @bufbuild/protobuf, so importing the types (or the ScalarType enum) from the top-level copy
// would not type-check against it; derive them instead and use the descriptor.proto numbers.
type DescFile = Schema['allFiles'][number];
type DescMessage = DescFile['messages'][number];
type DescEnum = DescFile['enums'][number];
type DescField = DescMessage['fields'][number];

/** google.protobuf.FieldDescriptorProto.Type numbers (= protobuf-es ScalarType values). */
const T_INT64 = 3,
  T_UINT64 = 4,
  T_INT32 = 5,
  T_BOOL = 8,
  T_STRING = 9,
  T_BYTES = 12,
  T_UINT32 = 13;
/** google.protobuf.FeatureSet.FieldPresence.IMPLICIT: proto3's "no has-bit" fields, all pb.ts knows. */
const IMPLICIT = 2;

interface LeanOptions {
  lean: string[];
  file: string;
  codec: string;
}

/** ScalarType → the pb.ts kind name (only what pb.ts can encode) and its TS type. */
const SCALARS = new Map<number, readonly [kind: string, ts: string]>([
  [T_STRING, ['string', 'string']],
  [T_BYTES, ['bytes', 'Uint8Array']],
  [T_BOOL, ['bool', 'boolean']],
  [T_INT32, ['int32', 'number']],
  [T_UINT32, ['uint32', 'number']],
  [T_INT64, ['int64', 'bigint']],
  [T_UINT64, ['uint64', 'bigint']],
]);

/** Well-known types pb.ts ships tables for: proto name → [table, TS type]. */
const WELL_KNOWN = new Map<string, readonly [table: string, ts: string]>([
  ['google.protobuf.Any', ['AnyS', 'Any']],
  ['google.protobuf.Timestamp', ['TimestampS', 'Timestamp']],
  ['google.protobuf.Empty', ['EmptyS', '']],
]);

function parseOptions(raw: Array<{ key: string; value: string }>): LeanOptions {
  const opts: LeanOptions = { lean: [], file: 'shim_lean.ts', codec: '../ttrpc/pb.js' };
  for (const { key, value } of raw) {
    if (key === 'lean') opts.lean.push(value.replace(/\.proto$/, ''));
    else if (key === 'file') opts.file = value;
    else if (key === 'codec') opts.codec = value;
    else throw new Error(`unknown option ${key}`);
  }
  return opts;
}

/** The name protobuf-es gives a message or enum shape: the path below the package, joined by "_". */
function shapeName(desc: DescMessage | DescEnum): string {
  const pkg = desc.file.proto.package;
  return safeIdentifier((pkg ? desc.typeName.slice(pkg.length + 1) : desc.typeName).replace(/\./g, '_'));
}

function unsupported(field: DescField, why: string): Error {
  return new Error(`${field.parent.typeName}.${field.name}: ${why} is not supported by src/ttrpc/pb.ts`);
}

/** The TS namespace path of a proto package ("io.containerd.cgroups.v1" stays as it is). */
function namespaceOf(file: DescFile): string {
  const pkg = file.proto.package;
  if (!pkg) throw new Error(`${file.proto.name}: a package is required (it names the namespace)`);
  return pkg.split('.').map(safeIdentifier).join('.');
}

/** The files to emit, each after the files it imports: the requested ones plus their imports (bar well-known types). */
function leanFiles(schema: Schema<LeanOptions>): DescFile[] {
  const byName = new Map(schema.allFiles.map((f) => [f.name, f]));
  const out = new Map<string, DescFile>();
  const add = (f: DescFile): void => {
    if (out.has(f.name) || f.name.startsWith('google/protobuf/')) return;
    out.set(f.name, f);
    f.dependencies.forEach(add);
    // re-insert after the dependencies so namespaces are initialised before they are referenced
    out.delete(f.name);
    out.set(f.name, f);
  };
  for (const name of schema.options.lean) {
    const f = byName.get(name);
    if (!f) throw new Error(`lean=${name}.proto is not among the input files (the plugin needs buf strategy: all)`);
    add(f);
  }
  return [...out.values()];
}

/** Messages of a file, each after the same-file messages its fields refer to (pb.ts tables are built eagerly). */
function inDependencyOrder(schema: Schema<LeanOptions>, file: DescFile): DescMessage[] {
  const done = new Set<DescMessage>();
  const visiting = new Set<DescMessage>();
  const order: DescMessage[] = [];
  const visit = (m: DescMessage): void => {
    if (done.has(m)) return;
    if (visiting.has(m)) throw new Error(`${m.typeName} is recursive, which pb.ts tables cannot express`);
    visiting.add(m);
    for (const f of m.fields) {
      const ref = f.fieldKind === 'message' || (f.fieldKind === 'list' && f.listKind === 'message') ? f.message : undefined;
      if (ref && ref.file === file) visit(ref);
    }
    visiting.delete(m);
    done.add(m);
    order.push(m);
  };
  for (const t of schema.typesInFile(file)) if (t.kind === 'message') visit(t);
  return order;
}

/** Names the generated module imports from pb.ts: a message, enum or package named so would shadow them. */
const CODEC_NAMES = new Set(['schema', 'Schema', 'Any', 'AnyS', 'Timestamp', 'TimestampS', 'EmptyS']);

/** Resolves fields of one proto file to table entries and TS types inside its namespace. */
class FileWriter {
  constructor(
    private readonly f: GeneratedFile,
    private readonly file: DescFile,
    private readonly codec: string,
  ) {}

  codecSymbol(name: string, typeOnly = false): ImportSymbol {
    return this.f.import(name, this.codec, typeOnly);
  }

  /** The table and TS type for a message-typed field: bare in its own package, else namespace-qualified. */
  message(field: DescField, m: DescMessage): { table: Printable; ts: Printable } {
    const wk = WELL_KNOWN.get(m.typeName);
    if (wk) return { table: this.codecSymbol(wk[0]), ts: wk[1] ? this.codecSymbol(wk[1], true) : 'Record<string, never>' };
    if (m.file.name.startsWith('google/')) throw unsupported(field, `well-known type ${m.typeName}`);
    const name = shapeName(m);
    // Fully qualified from the module's top namespaces. (An inner namespace named like a top
    // one, e.g. io.containerd vs containerd, would shadow it; tsc rejects such output.)
    const prefix = m.file.proto.package === this.file.proto.package ? '' : `${namespaceOf(m.file)}.`;
    return { table: `${prefix}${name}S`, ts: `${prefix}${name}` };
  }

  scalar(field: DescField, t: number): readonly [string, string] {
    const s = SCALARS.get(t);
    if (!s) throw unsupported(field, `scalar type #${t} (float, double, fixed or sint)`);
    return s;
  }

  /** [table entry printables, TS type] for one field. */
  field(field: DescField): { spec: Printable[]; ts: Printable[] } {
    if (field.oneof) throw unsupported(field, 'a oneof');
    const head: Printable[] = [`[${field.number}, `, this.f.string(field.localName), ', '];
    switch (field.fieldKind) {
      case 'scalar': {
        if (field.presence !== IMPLICIT) throw unsupported(field, 'explicit presence (proto3 optional)');
        const [kind, ts] = this.scalar(field, field.scalar);
        return { spec: [...head, this.f.string(kind), ']'], ts: [ts] };
      }
      case 'enum':
        if (field.presence !== IMPLICIT) throw unsupported(field, 'explicit presence (proto3 optional)');
        return { spec: [...head, '"enum"]'], ts: ['number'] };
      case 'message': {
        const { table, ts } = this.message(field, field.message);
        return { spec: [...head, table, ']'], ts: [ts, ' | undefined'] };
      }
      case 'list': {
        if (field.listKind === 'message') {
          const { table, ts } = this.message(field, field.message);
          return { spec: [...head, table, ', "repeated"]'], ts: [ts, '[]'] };
        }
        if (field.listKind === 'scalar' && field.scalar !== T_STRING && field.scalar !== T_BYTES && !field.packed) {
          throw unsupported(field, 'an unpacked repeated scalar');
        }
        const [kind, ts] = field.listKind === 'enum' ? ['enum', 'number'] : this.scalar(field, field.scalar);
        return { spec: [...head, this.f.string(kind), ', "repeated"]'], ts: [ts, '[]'] };
      }
      case 'map':
        if (field.mapKey !== T_STRING || field.mapKind !== 'scalar' || field.scalar !== T_STRING) {
          throw unsupported(field, 'a map other than map<string, string>');
        }
        return { spec: [...head, '"string", "map"]'], ts: ['Record<string, string>'] };
    }
  }
}

/** One `export namespace <package> { ... }` block: enums, then messages (interface + table) in dependency order. */
function printFile(schema: Schema<LeanOptions>, f: GeneratedFile, file: DescFile): void {
  const w = new FileWriter(f, file, schema.options.codec);
  const ns = namespaceOf(file);
  if (CODEC_NAMES.has(ns.split('.')[0] ?? '')) throw new Error(`${file.proto.name}: package ${ns} would shadow a pb.ts import`);
  f.print(`/** From ${file.proto.name}. */`);
  f.print(`export namespace ${ns} {`);
  let first = true;
  const gap = (): void => {
    if (!first) f.print();
    first = false;
  };
  for (const t of schema.typesInFile(file)) {
    if (t.kind !== 'enum') continue;
    const name = shapeName(t);
    gap();
    if (CODEC_NAMES.has(name)) throw new Error(`${t.typeName}: the name ${name} would shadow a pb.ts import`);
    f.print(f.jsDoc(t, '  '));
    f.print(`  export const ${name} = {`);
    for (const v of t.values) f.print('    ', v.localName, ': ', v.number, ',');
    f.print('  } as const;');
    f.print(`  export type ${name} = (typeof ${name})[keyof typeof ${name}];`);
  }
  for (const m of inDependencyOrder(schema, file)) {
    const name = shapeName(m);
    if (CODEC_NAMES.has(name) || CODEC_NAMES.has(`${name}S`)) throw new Error(`${m.typeName}: the name ${name} would shadow a pb.ts import`);
    const fields = m.fields.map((x) => ({ desc: x, ...w.field(x) }));
    gap();
    f.print(f.jsDoc(m, '  '));
    f.print(`  export interface ${name} {`);
    for (const x of fields) {
      // Carry the .proto field comment over: the interface is what shim code reads.
      const doc = getComments(x.desc).leading?.trim();
      if (doc) f.print(f.jsDoc(doc, '    '));
      f.print('    ', x.desc.localName, ': ', ...x.ts, ';');
    }
    f.print('  }');
    f.print(`  export const ${name}S: `, w.codecSymbol('Schema', true), ' = ', w.codecSymbol('schema'), '(', f.string(m.typeName), ', [');
    for (const x of fields) f.print('    ', ...x.spec, ',');
    f.print('  ]);');
  }
  f.print('}');
  f.print();
}

function generateLean(schema: Schema<LeanOptions>): void {
  const files = leanFiles(schema);
  const f = schema.generateFile(schema.options.file);
  f.print(`// @generated by protoc-gen-lean (scripts/protoc-gen-lean.ts) from:`);
  for (const file of files) f.print(`//   ${file.proto.name}`);
  f.print('// Do not edit: change the .proto files and run `npm run gen`.');
  f.print();
  for (const file of files) printFile(schema, f, file);
}

runNodeJs(
  createEcmaScriptPlugin<LeanOptions>({
    name: 'protoc-gen-lean',
    version: 'v1',
    parseOptions,
    generateTs: generateLean,
  }),
);
