/**
 * Digest strings ("sha256:<64 hex>", "sha512:<128 hex>"), parsed strictly: they become file
 * names in the content store, so anything else is rejected before it reaches a path.
 */
import { createHash, type Hash } from 'node:crypto';
import { errors } from '../../errors.js';

export type DigestAlgorithm = 'sha256' | 'sha512';

const hexLength: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
}

export function parseDigest(digest: string): ParsedDigest {
  const i = digest.indexOf(':');
  const algorithm = digest.slice(0, i);
  const hex = digest.slice(i + 1);
  if (i <= 0 || (algorithm !== 'sha256' && algorithm !== 'sha512')) {
    throw errors.invalidArgument('content.invalid_digest', `unsupported digest algorithm in "${digest.slice(0, 80)}"`);
  }
  if (hex.length !== hexLength[algorithm] || !/^[0-9a-f]+$/.test(hex)) {
    throw errors.invalidArgument('content.invalid_digest', `malformed ${algorithm} digest "${digest.slice(0, 160)}"`);
  }
  return { algorithm, hex };
}

export function isDigest(digest: string): boolean {
  try {
    parseDigest(digest);
    return true;
  } catch {
    return false;
  }
}

export function newHash(algorithm: DigestAlgorithm): Hash {
  return createHash(algorithm);
}

/** sha256 digest string of a buffer or string. */
export function sha256Digest(data: string | Uint8Array): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}
