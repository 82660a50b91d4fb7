/**
 * The process user (uid, gid, additional gids) from a CRI security context and the image's
 * `User`, resolved against the image's /etc/passwd and /etc/group.
 */
import { SupplementalGroupsPolicy, type Int64Value } from '../api/cri/runtime/v1/api_pb.js';
import { imageGroupsOf, resolveUserString, uniqueIds, type ResolvedUser, type UserDb } from './passwd.js';
import type { User } from './spec.js';
import { idFromInt64, invalid } from './values.js';

export interface UserInputs {
  runAsUser?: Int64Value | undefined;
  runAsGroup?: Int64Value | undefined;
  runAsUsername?: string;
  imageUser?: string;
  supplementalGroups: readonly bigint[];
  /** Strict: only the primary gid and the requested groups, none from the image's /etc/group. */
  policy?: SupplementalGroupsPolicy;
  /** The pause container takes no groups from the image (containerd's sandbox behaviour). */
  imageGroups: boolean;
  db: UserDb;
  field: string;
}

function primaryUser(inp: UserInputs): ResolvedUser {
  const f = inp.field;
  const gid = inp.runAsGroup === undefined ? undefined : idFromInt64(inp.runAsGroup.value, `${f}.run_as_group.value`);
  const username = inp.runAsUsername ?? '';
  if (username !== '') {
    if (username.includes(':') || username.includes('\0'))
      throw invalid(`${f}.run_as_username`, `invalid user name ${JSON.stringify(username)}`, 'oci.invalid_user');
    const u = resolveUserString(username, inp.db, `${f}.run_as_username`);
    return gid === undefined ? u : { ...u, gid };
  }
  if (inp.runAsUser !== undefined) {
    const uid = idFromInt64(inp.runAsUser.value, `${f}.run_as_user.value`);
    const entry = inp.db.passwd?.find((e) => e.uid === uid);
    const u: ResolvedUser = entry ? { uid, gid: entry.gid, name: entry.name } : { uid, gid: 0 };
    return gid === undefined ? u : { ...u, gid };
  }
  if (gid !== undefined) throw invalid(`${f}.run_as_group`, 'is specified without run_as_user or run_as_username', 'oci.invalid_user');
  if (inp.imageUser) return resolveUserString(inp.imageUser, inp.db, 'image config User');
  const root = inp.db.passwd?.find((e) => e.uid === 0);
  return root ? { uid: 0, gid: 0, name: root.name } : { uid: 0, gid: 0 };
}

/**
 * uid/gid and additionalGids: the primary gid first (so setgroups never drops it,
 * CVE-2023-25173), then the user's groups from the image's /etc/group, then the requested
 * supplemental groups; duplicates removed, order kept.
 */
export function resolveProcessUser(inp: UserInputs): User {
  const u = primaryUser(inp);
  const requested = inp.supplementalGroups.map((g, i) => idFromInt64(g, `${inp.field}.supplemental_groups[${i}]`));
  const fromImage = inp.imageGroups && inp.policy !== SupplementalGroupsPolicy.Strict ? imageGroupsOf(u, inp.db) : [];
  return { uid: u.uid, gid: u.gid, additionalGids: uniqueIds([u.gid, ...fromImage, ...requested]) };
}
