/**
 * ttrpc request metadata: a multi-map carried as repeated `ttrpc.KeyValue` (one entry per
 * value, keys may repeat), like Go's ttrpc.MD (map[string][]string).
 */

import type { KeyValue } from './envelope.js';

/** Metadata as callers pass it: one value or several per key. */
export type MetadataInit = Readonly<Record<string, string | readonly string[]>>;
/** Metadata as handlers receive it: every key maps to all its values, in wire order. */
export type Metadata = Record<string, string[]>;

export function metadataToWire(md: MetadataInit | undefined): KeyValue[] {
  if (!md) return [];
  const out: KeyValue[] = [];
  for (const [key, v] of Object.entries(md)) {
    const values = typeof v === 'string' ? [v] : v;
    for (const value of values) out.push({ key, value });
  }
  return out;
}

export function metadataFromWire(kvs: readonly KeyValue[]): Metadata {
  // Null prototype: keys come from the peer and must not hit Object.prototype members.
  const md: Metadata = Object.create(null) as Metadata;
  for (const { key, value } of kvs) (md[key] ??= []).push(value);
  return md;
}
