/**
 * A small protobuf (proto3) wire codec driven by field tables, for processes that must stay
 * lean: berth-shim serves the whole shim v2 task API with it and never loads protobuf-es,
 * whose runtime plus descriptor registries cost ~7 MiB of anonymous memory per process
 * (measured: a Node process importing only `@bufbuild/protobuf` goes from 6.5 to 13.5 MiB).
 *
 * Decoded messages are plain objects shaped like protobuf-es v2 messages (lowerCamel names,
 * bigint for 64-bit integers, Uint8Array for bytes, undefined for an absent sub-message, []
 * for repeated, a null-prototype record for map<string,string>), so code written against the
 * generated types reads them unchanged. Encoding follows proto3 implicit presence: default
 * values are not written; repeated scalars are packed. Unknown fields are skipped on decode.
 */

export type ScalarKind = 'string' | 'bytes' | 'bool' | 'int32' | 'uint32' | 'int64' | 'uint64' | 'enum';

/** [field number, lowerCamel name, kind or sub-message schema, 'repeated' | 'map'] */
export type FieldSpec = readonly [number, string, ScalarKind | Schema, ('repeated' | 'map')?];

export interface Schema {
  /** Proto full name (the Any type URL containerd uses). */
  readonly typeName: string;
  readonly fields: readonly FieldSpec[];
  /** Field number → spec, built on first use. */
  byNo?: Map<number, FieldSpec>;
}

/** A plain decoded message (see file comment). */
export type Msg = Record<string, unknown>;

export function schema(typeName: string, fields: readonly FieldSpec[]): Schema {
  return { typeName, fields };
}

// ---------------------------------------------------------------------------------------------
// Encoding

class Writer {
  private buf: Uint8Array = new Uint8Array(64);
  pos = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  varint(v: number): void {
    // v is a non-negative integer below 2^53.
    this.ensure(10);
    while (v > 0x7f) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
  }

  varint64(v: bigint): void {
    let u = BigInt.asUintN(64, v);
    this.ensure(10);
    while (u > 0x7fn) {
      this.buf[this.pos++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.buf[this.pos++] = Number(u);
  }

  tag(no: number, wire: number): void {
    this.varint(no * 8 + wire);
  }

  bytes(b: Uint8Array): void {
    this.varint(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

const utf8 = new TextEncoder();
const utf8d = new TextDecoder('utf-8', { fatal: true });

function isDefault(kind: ScalarKind, v: unknown): boolean {
  switch (kind) {
    case 'string':
      return v === '' || v === undefined;
    case 'bytes':
      return v === undefined || (v as Uint8Array).length === 0;
    case 'bool':
      return !v;
    case 'int64':
    case 'uint64':
      return v === undefined || BigInt(v as bigint | number) === 0n;
    default:
      return v === undefined || v === 0;
  }
}

function writeScalarValue(w: Writer, kind: ScalarKind, v: unknown): void {
  switch (kind) {
    case 'string':
      w.bytes(utf8.encode(v as string));
      return;
    case 'bytes':
      w.bytes(v as Uint8Array);
      return;
    case 'bool':
      w.varint(v ? 1 : 0);
      return;
    case 'int64':
    case 'uint64':
      w.varint64(BigInt(v as bigint | number));
      return;
    case 'uint32':
      w.varint((v as number) >>> 0);
      return;
    default: {
      // int32 / enum: negative values are sign-extended to 64 bits (10 bytes), as protobuf does.
      const n = v as number;
      if (n < 0) w.varint64(BigInt(n));
      else w.varint(n);
    }
  }
}

const wireOf = (kind: ScalarKind): number => (kind === 'string' || kind === 'bytes' ? 2 : 0);

/** Encode `msg` (a plain object; missing fields are defaults) as `s`. */
export function encode(s: Schema, msg: object | undefined): Uint8Array {
  const w = new Writer();
  if (msg) writeFields(w, s, msg as Msg);
  return w.finish();
}

function writeFields(w: Writer, s: Schema, msg: Msg): void {
  for (const [no, name, kind, card] of s.fields) {
    const v = msg[name];
    if (v === undefined || v === null) continue;
    if (card === 'map') {
      for (const [k, val] of Object.entries(v as Record<string, string>)) {
        const e = new Writer();
        if (k !== '') writeField(e, 1, 'string', k);
        if (val !== '') writeField(e, 2, 'string', val);
        w.tag(no, 2);
        w.bytes(e.finish());
      }
    } else if (card === 'repeated') {
      const list = v as readonly unknown[];
      if (list.length === 0) continue;
      if (typeof kind === 'string' && wireOf(kind) === 0) {
        const p = new Writer();
        for (const x of list) writeScalarValue(p, kind, x);
        w.tag(no, 2);
        w.bytes(p.finish());
      } else {
        for (const x of list) writeField(w, no, kind, x);
      }
    } else if (typeof kind === 'string') {
      if (!isDefault(kind, v)) writeField(w, no, kind, v);
    } else {
      writeField(w, no, kind, v);
    }
  }
}

function writeField(w: Writer, no: number, kind: ScalarKind | Schema, v: unknown): void {
  if (typeof kind === 'string') {
    w.tag(no, wireOf(kind));
    writeScalarValue(w, kind, v);
    return;
  }
  w.tag(no, 2);
  w.bytes(encode(kind, v as object));
}

// ---------------------------------------------------------------------------------------------
// Decoding

class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  private byte(): number {
    if (this.pos >= this.buf.length) throw new Error('premature EOF');
    return this.buf[this.pos++] as number;
  }

  varint64(): bigint {
    let r = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      const b = this.byte();
      r |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asUintN(64, r);
    }
    throw new Error('invalid varint');
  }

  /** A varint as a number: exact below 2^53, which is all a length, tag or 32-bit value needs. */
  varint(): number {
    let r = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      r += (b & 0x7f) * mul;
      if (b < 0x80) return r;
      mul *= 0x80;
    }
    throw new Error('invalid varint');
  }

  lengthDelimited(): Uint8Array {
    const n = this.varint();
    if (this.pos + n > this.buf.length) throw new Error('premature EOF');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  skip(wire: number): void {
    switch (wire) {
      case 0:
        this.varint64();
        return;
      case 1:
        this.advance(8);
        return;
      case 2:
        this.lengthDelimited();
        return;
      case 5:
        this.advance(4);
        return;
      default:
        throw new Error(`cannot skip wire type ${wire}`);
    }
  }

  private advance(n: number): void {
    if (this.pos + n > this.buf.length) throw new Error('premature EOF');
    this.pos += n;
  }
}

function defaultOf(kind: ScalarKind | Schema, card: FieldSpec[3]): unknown {
  if (card === 'repeated') return [];
  if (card === 'map') return Object.create(null) as Record<string, string>;
  switch (kind) {
    case 'string':
      return '';
    case 'bytes':
      return new Uint8Array(0);
    case 'bool':
      return false;
    case 'int64':
    case 'uint64':
      return 0n;
    case 'int32':
    case 'uint32':
    case 'enum':
      return 0;
    default:
      return undefined;
  }
}

function readScalar(r: Reader, kind: ScalarKind): unknown {
  switch (kind) {
    case 'string': {
      const bytes = r.lengthDelimited();
      try {
        return utf8d.decode(bytes);
      } catch {
        // TextDecoder's TypeError is not one of this decoder's errors (found by fuzzing).
        throw new Error('invalid UTF-8 in a string field');
      }
    }
    case 'bytes':
      return r.lengthDelimited().slice();
    case 'bool':
      return r.varint64() !== 0n;
    case 'int64':
      return BigInt.asIntN(64, r.varint64());
    case 'uint64':
      return r.varint64();
    case 'uint32':
      return Number(BigInt.asUintN(32, r.varint64()));
    default:
      return Number(BigInt.asIntN(32, r.varint64()));
  }
}

function index(s: Schema): Map<number, FieldSpec> {
  if (!s.byNo) s.byNo = new Map(s.fields.map((f) => [f[0], f]));
  return s.byNo;
}

/** Decode bytes as `s`. Throws on malformed input (truncation, bad UTF-8, wrong wire type). */
export function decode(s: Schema, bytes: Uint8Array): Msg {
  const out: Msg = {};
  for (const [, name, kind, card] of s.fields) out[name] = defaultOf(kind, card);
  const r = new Reader(bytes);
  const fields = index(s);
  while (!r.done) {
    const tag = r.varint();
    const no = Math.floor(tag / 8);
    const wire = tag & 7;
    const f = fields.get(no);
    if (!f) {
      r.skip(wire);
      continue;
    }
    const [, name, kind, card] = f;
    if (card === 'map') {
      if (wire !== 2) throw new Error(`field ${s.typeName}.${name}: wrong wire type ${wire}`);
      const entry = decode(MAP_ENTRY, r.lengthDelimited());
      (out[name] as Record<string, string>)[entry['key'] as string] = entry['value'] as string;
    } else if (typeof kind !== 'string') {
      if (wire !== 2) throw new Error(`field ${s.typeName}.${name}: wrong wire type ${wire}`);
      const m = decode(kind, r.lengthDelimited());
      if (card === 'repeated') (out[name] as unknown[]).push(m);
      else out[name] = m;
    } else if (card === 'repeated' && wire === 2 && wireOf(kind) === 0) {
      const p = new Reader(r.lengthDelimited());
      while (!p.done) (out[name] as unknown[]).push(readScalar(p, kind));
    } else {
      if (wire !== wireOf(kind)) throw new Error(`field ${s.typeName}.${name}: wrong wire type ${wire}`);
      const v = readScalar(r, kind);
      if (card === 'repeated') (out[name] as unknown[]).push(v);
      else out[name] = v;
    }
  }
  return out;
}

const MAP_ENTRY = schema('map_entry', [
  [1, 'key', 'string'],
  [2, 'value', 'string'],
]);

// ---------------------------------------------------------------------------------------------
// Well-known types the shim API uses

export interface Any {
  typeUrl: string;
  value: Uint8Array;
}
export interface Timestamp {
  seconds: bigint;
  nanos: number;
}

export const AnyS = schema('google.protobuf.Any', [
  [1, 'typeUrl', 'string'],
  [2, 'value', 'bytes'],
]);
export const TimestampS = schema('google.protobuf.Timestamp', [
  [1, 'seconds', 'int64'],
  [2, 'nanos', 'int32'],
]);
export const EmptyS = schema('google.protobuf.Empty', []);

export function timestamp(d: Date): Timestamp {
  const ms = d.getTime();
  const seconds = Math.floor(ms / 1000);
  return { seconds: BigInt(seconds), nanos: (ms - seconds * 1000) * 1_000_000 };
}

/** Pack `msg` into an Any with the bare type URL containerd's typeurl uses for proto messages. */
export function packAny(s: Schema, msg: object): Any {
  return { typeUrl: s.typeName, value: encode(s, msg) };
}
