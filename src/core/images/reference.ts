/**
 * Docker-style image references, normalized the way containerd and distribution do:
 *   busybox            → docker.io/library/busybox:latest
 *   user/app:1         → docker.io/user/app:1
 *   localhost:5000/x   → localhost:5000/x:latest
 *   host/p@sha256:…    → host/p@sha256:…   (no default tag when a digest is given)
 * Pure: no I/O. Every rejection is InvalidArgument code `image.invalid_reference` and names
 * the reference.
 */
import { errors } from '../../errors.js';

export interface Reference {
  /** Registry host, with port if any; `docker.io` for Docker Hub. */
  domain: string;
  /** Repository path inside the registry, lowercase, e.g. `library/busybox`. */
  path: string;
  /** Tag; `latest` is filled in when neither tag nor digest was given. */
  tag?: string;
  /** `sha256:<64 hex>` or `sha512:<128 hex>`. When set, it is what gets pulled. */
  digest?: string;
}

/** What a CRI image spec can name: a reference to pull, or an image already known by id. */
export type ImageSpec = { kind: 'reference'; ref: Reference } | { kind: 'id'; id: string };

export const DOCKER_HUB_DOMAIN = 'docker.io';
const LEGACY_HUB_DOMAIN = 'index.docker.io';
const OFFICIAL_PREFIX = 'library/';
export const DEFAULT_TAG = 'latest';
/** Limit on `domain/path` as written (distribution's NameTotalLengthMax). */
export const NAME_MAX_LENGTH = 255;
/** Reject absurd input before any pattern matching (name + tag + sha512 digest fit easily). */
const INPUT_MAX_LENGTH = 512;

const domainComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const domainRe = new RegExp(`^(?:${domainComponent}(?:\\.${domainComponent})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const pathComponentRe = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const tagRe = /^[\w][\w.-]{0,127}$/;
const digestRe = /^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
const hex64Re = /^[a-f0-9]{64}$/;
const imageIdRe = /^sha256:[a-f0-9]{64}$/;

function invalid(input: string, why: string): Error {
  return errors.invalidArgument('image.invalid_reference', `invalid image reference "${input}": ${why}`);
}

/**
 * Split the first path segment off as the registry domain when it looks like one (has a dot
 * or a port, is `localhost`, or has uppercase letters, which repository paths never have).
 */
function splitDomain(name: string): { domain: string; path: string } {
  const slash = name.indexOf('/');
  if (slash === -1) return { domain: DOCKER_HUB_DOMAIN, path: name };
  const first = name.slice(0, slash);
  const looksLikeHost = first.includes('.') || first.includes(':') || first === 'localhost' || first.toLowerCase() !== first;
  if (!looksLikeHost) return { domain: DOCKER_HUB_DOMAIN, path: name };
  return { domain: first, path: name.slice(slash + 1) };
}

/** Parse and normalize a reference to pull. Throws InvalidArgument naming the input. */
export function parseReference(input: string): Reference {
  if (input.length === 0) throw invalid(input, 'empty');
  if (input.length > INPUT_MAX_LENGTH) throw invalid(input.slice(0, 64) + '…', `longer than ${INPUT_MAX_LENGTH} characters`);
  if (hex64Re.test(input) || imageIdRe.test(input)) {
    throw invalid(input, 'this is an image id, not a repository name (64-byte hexadecimal strings cannot be repositories)');
  }

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!digestRe.test(digest)) throw invalid(input, `bad digest "${digest}" (want sha256:<64 hex> or sha512:<128 hex>, lowercase)`);
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!tagRe.test(tag)) throw invalid(input, `bad tag "${tag}" (letters, digits, "_", "." and "-", at most 128, not starting with "." or "-")`);
  }

  if (rest.length === 0) throw invalid(input, 'missing repository name');
  if (rest.length > NAME_MAX_LENGTH) throw invalid(input, `repository name longer than ${NAME_MAX_LENGTH} characters`);

  let { domain, path } = splitDomain(rest);
  if (!domainRe.test(domain)) throw invalid(input, `bad registry host "${domain}"`);
  if (path.length === 0) throw invalid(input, 'missing repository path');
  if (path.toLowerCase() !== path) throw invalid(input, 'repository name must be lowercase');
  for (const component of path.split('/')) {
    if (!pathComponentRe.test(component)) {
      throw invalid(input, `bad path component "${component}" (lowercase letters and digits, separated by ".", "_", "__" or "-")`);
    }
  }

  if (domain === LEGACY_HUB_DOMAIN) domain = DOCKER_HUB_DOMAIN;
  if (domain === DOCKER_HUB_DOMAIN && !path.includes('/')) path = OFFICIAL_PREFIX + path;
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;

  const ref: Reference = { domain, path };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/**
 * A CRI image spec is either an image id (`sha256:<64 hex>` or bare 64 hex, returned as the
 * full `sha256:` form) or a reference. Lets the image service look images up by id.
 */
export function parseImageSpec(input: string): ImageSpec {
  if (imageIdRe.test(input)) return { kind: 'id', id: input };
  if (hex64Re.test(input)) return { kind: 'id', id: `sha256:${input}` };
  return { kind: 'reference', ref: parseReference(input) };
}

/** `domain/path`, e.g. `docker.io/library/busybox`. */
export function repository(ref: Reference): string {
  return `${ref.domain}/${ref.path}`;
}

/** Normalized full form: `docker.io/library/busybox:latest`, `host/p:t@sha256:…`. */
export function referenceString(ref: Reference): string {
  let s = repository(ref);
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** True when the reference pins content by digest. */
export function isDigest(ref: Reference): boolean {
  return ref.digest !== undefined;
}

/** The name as users write it: `busybox`, `user/app`, `quay.io/x/y` (no tag or digest). */
export function familiarName(ref: Reference): string {
  if (ref.domain !== DOCKER_HUB_DOMAIN) return repository(ref);
  return ref.path.startsWith(OFFICIAL_PREFIX) ? ref.path.slice(OFFICIAL_PREFIX.length) : ref.path;
}

/** Familiar name with tag / digest, e.g. `busybox:latest`. */
export function familiarString(ref: Reference): string {
  let s = familiarName(ref);
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** `repo@digest` form (CRI "repo digests"). */
export function withDigest(ref: Reference, digest: string): Reference {
  if (!digestRe.test(digest)) throw invalid(digest, 'bad digest');
  return { domain: ref.domain, path: ref.path, digest };
}

/** What to ask the registry's /manifests/ endpoint for: the digest when pinned, else the tag. */
export function manifestReference(ref: Reference): string {
  return ref.digest ?? ref.tag ?? DEFAULT_TAG;
}
