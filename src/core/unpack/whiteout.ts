/**
 * OCI/AUFS whiteout markers in layer tars: `.wh.NAME` deletes NAME from lower layers,
 * `.wh..wh..opq` makes its directory opaque (hides all lower content).
 */
import { errors } from '../../errors.js';

export const WHITEOUT_PREFIX = '.wh.';
export const WHITEOUT_META_PREFIX = '.wh..wh.';
export const WHITEOUT_OPAQUE = '.wh..wh..opq';

export type WhiteoutMarker =
  | { kind: 'none' }
  | { kind: 'opaque' }
  /** AUFS bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`): carries no content, skipped. */
  | { kind: 'meta' }
  | { kind: 'delete'; name: string };

/** Classifies a base name; throws for malformed markers (`.wh.`, `.wh..`, `.wh...`). */
export function parseWhiteout(base: string): WhiteoutMarker {
  if (!base.startsWith(WHITEOUT_PREFIX)) return { kind: 'none' };
  if (base === WHITEOUT_OPAQUE) return { kind: 'opaque' };
  if (base.startsWith(WHITEOUT_META_PREFIX)) return { kind: 'meta' };
  const name = base.slice(WHITEOUT_PREFIX.length);
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw errors.invalidArgument('unpack.bad_whiteout', `malformed whiteout marker ${JSON.stringify(base)}`);
  }
  return { kind: 'delete', name };
}
