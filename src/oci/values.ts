/**
 * Strict value checks shared by the spec builders. Every failure is an InvalidArgument error
 * whose message starts with the field path, so the CRI caller can hand it back unchanged.
 */
import { posix } from 'node:path';
import { BerthError, errors } from '../errors.js';
import type { CodeOf } from '../error-codes.js';

export const MAX_UINT32 = 4294967295;

/** InvalidArgument naming the field: `"<field>: <problem>"`. */
export function invalid(field: string, problem: string, code: CodeOf<'InvalidArgument'> = 'oci.invalid_argument'): BerthError {
  return errors.invalidArgument(code, `${field}: ${problem}`);
}

/**
 * A uid or gid from a decimal string. Only digits, no sign, no whitespace, at most
 * 4294967294: (uid_t)-1 means "leave unchanged" to setresuid(2) and would keep root.
 * Parsed with Number on a bounded digit string, never with bit operations (`x | 0` wraps
 * to int32).
 */
export function parseId(text: string, field: string): number {
  if (!/^[0-9]{1,10}$/.test(text)) throw invalid(field, `${JSON.stringify(text)} is not an unsigned 32-bit id`);
  const n = Number(text);
  if (n >= MAX_UINT32) throw invalid(field, `${text} is out of range (max ${MAX_UINT32 - 1})`);
  return n;
}

/** Same bounds as parseId, for an int64 from a CRI message. */
export function idFromInt64(v: bigint | number, field: string): number {
  const b = BigInt(v);
  if (b < 0n || b >= BigInt(MAX_UINT32)) throw invalid(field, `${b} is out of range (0..${MAX_UINT32 - 1})`);
  return Number(b);
}

/** An int64 from a CRI message as a JS number, checked against [min, max] and safe-integer range. */
export function int64InRange(v: bigint | number, field: string, min: number, max: number): number {
  const b = BigInt(v);
  if (b < BigInt(min) || b > BigInt(max)) throw invalid(field, `${b} is out of range (${min}..${max})`);
  return Number(b);
}

/** Largest integer that survives JSON and Number round trips exactly. */
export const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** Absolute, NUL-free, normalised path ("/a/b", never a trailing slash except "/"). */
export function absPath(p: string, field: string): string {
  if (p === '') throw invalid(field, 'must not be empty');
  if (p.includes('\0')) throw invalid(field, 'must not contain NUL');
  if (!p.startsWith('/')) throw invalid(field, `${JSON.stringify(p)} must be an absolute path`);
  const n = posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

/** Number of path components, used to order mounts so parents are mounted before children. */
export function pathDepth(p: string): number {
  return p === '/' ? 0 : p.split('/').length - 1;
}

export function noNul(s: string, field: string): string {
  if (s.includes('\0')) throw invalid(field, 'must not contain NUL');
  return s;
}
