/**
 * Platforms (os/architecture/variant) and choosing among the manifests of an image index.
 * Semantics follow containerd's `platforms.Only` / `platforms.Default`: os and architecture
 * must match after normalization, and a host also runs older variants of its architecture
 * (amd64 v3 runs v2, v1 and 386; arm64 runs 32-bit arm v8 down to v5; arm v7 runs v6, v5),
 * preferring the closest one. Pure: no I/O beyond reading process.arch once.
 */
import { errors } from '../../errors.js';
import type { Descriptor, Platform } from './descriptor.js';

export type { Platform } from './descriptor.js';

/** Architecture aliases and variant canonical forms. */
export function normalizeArch(architecture: string, variant = ''): { architecture: string; variant: string } {
  const arch = architecture.toLowerCase();
  let v = variant.toLowerCase();
  switch (arch) {
    case 'i386':
      return { architecture: '386', variant: '' };
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      // amd64 v1 is the baseline, written without a variant.
      return { architecture: 'amd64', variant: v === 'v1' ? '' : v };
    case 'aarch64':
    case 'arm64':
      // arm64 v8 is the baseline, written without a variant.
      if (v === '8' || v === 'v8' || v === 'v8.0') v = '';
      return { architecture: 'arm64', variant: v };
    case 'armhf':
      return { architecture: 'arm', variant: 'v7' };
    case 'armel':
      return { architecture: 'arm', variant: 'v6' };
    case 'arm':
      if (v === '' || v === '7') v = 'v7';
      else if (v === '5' || v === '6' || v === '8') v = `v${v}`;
      return { architecture: 'arm', variant: v };
    default:
      return { architecture: arch, variant: v };
  }
}

function normalizeOS(os: string): string {
  const o = os.toLowerCase();
  return o === 'macos' ? 'darwin' : o;
}

/** Canonical form of a platform; variant is omitted when empty. */
export function normalizePlatform(p: Platform): Platform {
  const { architecture, variant } = normalizeArch(p.architecture, p.variant ?? '');
  const out: Platform = { os: normalizeOS(p.os), architecture };
  if (variant !== '') out.variant = variant;
  return out;
}

/** `linux/arm64`, `linux/arm/v7`. */
export function formatPlatform(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/** Parse `os/arch[/variant]` (or a bare arch, meaning linux) into a normalized platform. */
export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  const bad = () => errors.invalidArgument('image.invalid_platform', `invalid platform "${s}": want os/arch[/variant]`);
  if (parts.length > 3 || parts.some((x) => !/^[A-Za-z0-9_.-]+$/.test(x))) throw bad();
  if (parts.length === 1) return normalizePlatform({ os: 'linux', architecture: parts[0]! });
  const p: Platform = { os: parts[0]!, architecture: parts[1]! };
  if (parts[2] !== undefined) p.variant = parts[2];
  return normalizePlatform(p);
}

/** Node's process.arch → OCI architecture name. */
function archFromNode(nodeArch: string): { architecture: string; variant: string } {
  switch (nodeArch) {
    case 'x64':
      return { architecture: 'amd64', variant: '' };
    case 'ia32':
      return { architecture: '386', variant: '' };
    case 'arm': {
      const v = (process.config.variables as Record<string, unknown>)['arm_version'];
      return normalizeArch('arm', typeof v === 'string' || typeof v === 'number' ? String(v) : '');
    }
    case 'ppc64':
      return { architecture: 'ppc64le', variant: '' }; // Node on Linux/ppc64 is little-endian
    default:
      return normalizeArch(nodeArch);
  }
}

/** The platform this process runs on, normalized (e.g. linux/amd64). */
export function currentPlatform(): Platform {
  const { architecture, variant } = archFromNode(process.arch);
  const p: Platform = { os: normalizeOS(process.platform), architecture };
  if (variant !== '') p.variant = variant;
  return p;
}

/** Platforms a host of platform `p` can run, best first (containerd's platform vector). */
export function compatiblePlatforms(p: Platform): Platform[] {
  const host = normalizePlatform(p);
  const out: Platform[] = [host];
  const version = (v: string | undefined): number => (v ? Number.parseInt(v.replace(/^v/, ''), 10) : Number.NaN);
  switch (host.architecture) {
    case 'amd64': {
      const n = version(host.variant);
      if (Number.isInteger(n) && n > 1) {
        for (let i = n - 1; i >= 1; i--) out.push(normalizePlatform({ os: host.os, architecture: 'amd64', variant: `v${i}` }));
      }
      out.push({ os: host.os, architecture: '386' });
      break;
    }
    case 'arm': {
      const n = version(host.variant);
      if (Number.isInteger(n) && n > 5) {
        for (let i = n - 1; i >= 5; i--) out.push({ os: host.os, architecture: 'arm', variant: `v${i}` });
      }
      break;
    }
    case 'arm64': {
      // arm64 cores that keep AArch32 run 32-bit arm binaries of the same or older variant.
      const armVariant = host.variant && /^v8/.test(host.variant) ? host.variant : 'v8';
      out.push(...compatiblePlatforms({ os: host.os, architecture: 'arm', variant: armVariant }));
      break;
    }
  }
  return out;
}

export interface PlatformMatcher {
  /** True if a host of the matcher's platform can run `p`. */
  match(p: Platform): boolean;
  /** Preference rank: 0 is best; Infinity if no match. */
  rank(p: Platform): number;
  /** Stable, human-readable description for error messages. */
  readonly description: string;
}

function samePlatform(a: Platform, b: Platform): boolean {
  return a.os === b.os && a.architecture === b.architecture && (a.variant ?? '') === (b.variant ?? '');
}

/** Match exactly `p` or what it can run (containerd's platforms.Only). */
export function onlyPlatform(p: Platform): PlatformMatcher {
  const vector = compatiblePlatforms(p);
  const rank = (candidate: Platform): number => {
    const c = normalizePlatform(candidate);
    const i = vector.findIndex((v) => samePlatform(v, c));
    return i === -1 ? Number.POSITIVE_INFINITY : i;
  };
  return {
    match: (c) => rank(c) !== Number.POSITIVE_INFINITY,
    rank,
    description: formatPlatform(normalizePlatform(p)),
  };
}

/** Matcher for the current host (containerd's platforms.Default on Linux). */
export function defaultPlatformMatcher(): PlatformMatcher {
  return onlyPlatform(currentPlatform());
}

const REFERENCE_TYPE_ANNOTATION = 'vnd.docker.reference.type';

/**
 * Manifests of an index the host can run, best first. Entries without a platform are kept
 * after all matching ones (containerd keeps them too); buildkit attestation manifests
 * (platform unknown/unknown, annotated) are never chosen.
 */
export function selectManifests(manifests: readonly Descriptor[], matcher: PlatformMatcher = defaultPlatformMatcher()): Descriptor[] {
  const ranked: Array<{ d: Descriptor; rank: number; i: number }> = [];
  manifests.forEach((d, i) => {
    if (d.annotations?.[REFERENCE_TYPE_ANNOTATION] === 'attestation-manifest') return;
    if (d.platform === undefined) {
      ranked.push({ d, rank: Number.MAX_SAFE_INTEGER, i });
      return;
    }
    const rank = matcher.rank(d.platform);
    if (rank !== Number.POSITIVE_INFINITY) ranked.push({ d, rank, i });
  });
  ranked.sort((a, b) => a.rank - b.rank || a.i - b.i);
  return ranked.map((r) => r.d);
}

/** Best manifest for the matcher, or NotFound naming the wanted platform and what exists. */
export function selectManifest(manifests: readonly Descriptor[], matcher: PlatformMatcher = defaultPlatformMatcher(), what = 'image'): Descriptor {
  const best = selectManifests(manifests, matcher)[0];
  if (best === undefined) {
    const offered = manifests.filter((m) => m.platform).map((m) => formatPlatform(m.platform!));
    throw errors.notFound(
      'image.platform_not_found',
      `no manifest for platform ${matcher.description} in ${what} (available: ${offered.length ? offered.join(', ') : 'none'})`,
    );
  }
  return best;
}
