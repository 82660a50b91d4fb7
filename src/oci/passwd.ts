/**
 * Bounded parsing of an image's /etc/passwd and /etc/group, and resolution of user strings
 * ("name", "uid", "uid:gid", "name:group", ...) against them.
 *
 * The files come from an untrusted image: size and line count are capped, ids are parsed
 * strictly as unsigned 32-bit decimals, and a malformed line is skipped (never read as 0,
 * which would be root). The caller reads the files (inside the rootfs, without following
 * links out of it) and passes their text; `undefined` means the file does not exist.
 */
import { errors } from '../errors.js';
import { invalid, parseId } from './values.js';

export const MAX_USER_DB_BYTES = 4 * 1024 * 1024;
export const MAX_USER_DB_LINES = 65536;

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** Parsed user database of an image; a missing file is `undefined`. */
export interface UserDb {
  passwd?: PasswdEntry[];
  group?: GroupEntry[];
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** The passwd name of the user, when known (needed to find its groups). */
  name?: string;
}

function boundedLines(text: string, file: string): string[] {
  // String length counts UTF-16 units; a byte cap on UTF-8 would be at least this big.
  if (text.length > MAX_USER_DB_BYTES) {
    throw errors.invalidArgument('oci.user_db_too_large', `image ${file}: larger than ${MAX_USER_DB_BYTES} bytes`);
  }
  const lines = text.split('\n');
  if (lines.length > MAX_USER_DB_LINES) {
    throw errors.invalidArgument('oci.user_db_too_large', `image ${file}: more than ${MAX_USER_DB_LINES} lines`);
  }
  return lines;
}

function strictId(field: string): number | undefined {
  try {
    return parseId(field, 'id');
  } catch {
    return undefined;
  }
}

/** Lines that carry no entry: blank, comments, NIS compat markers (+/-). */
function skippable(line: string): boolean {
  return line === '' || line.startsWith('#') || line.startsWith('+') || line.startsWith('-');
}

export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const raw of boundedLines(text, '/etc/passwd')) {
    const line = raw.replace(/\r$/, '').trim();
    if (skippable(line)) continue;
    const f = line.split(':');
    if (f.length < 4 || f[0] === '') continue;
    const uid = strictId(f[2]!);
    const gid = strictId(f[3]!);
    if (uid === undefined || gid === undefined) continue;
    out.push({ name: f[0]!, uid, gid, home: f[5] ?? '', shell: f[6] ?? '' });
  }
  return out;
}

export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const raw of boundedLines(text, '/etc/group')) {
    const line = raw.replace(/\r$/, '').trim();
    if (skippable(line)) continue;
    const f = line.split(':');
    if (f.length < 3 || f[0] === '') continue;
    const gid = strictId(f[2]!);
    if (gid === undefined) continue;
    const members = (f[3] ?? '')
      .split(',')
      .map((m) => m.trim())
      .filter((m) => m !== '');
    out.push({ name: f[0]!, gid, members });
  }
  return out;
}

/** Parses whichever of the two files exist. */
export function loadUserDb(passwdText?: string, groupText?: string): UserDb {
  return {
    passwd: passwdText === undefined ? undefined : parsePasswd(passwdText),
    group: groupText === undefined ? undefined : parseGroup(groupText),
  };
}

const isNumeric = (s: string): boolean => /^[0-9]+$/.test(s);

/**
 * Resolves a user string as containerd's oci.WithUser does:
 * - "uid"        → uid; gid from the passwd entry of that uid, else 0
 * - "name"       → uid and gid of the passwd entry (error when there is none)
 * - "uid:gid"    → both as given, no lookup
 * - "name:gid", "uid:group", "name:group" → names looked up in passwd / group (error when missing)
 */
export function resolveUserString(userstr: string, db: UserDb, field: string): ResolvedUser {
  const parts = userstr.split(':');
  if (parts.length > 2 || parts.some((p) => p === '')) {
    throw invalid(field, `invalid user ${JSON.stringify(userstr)}`, 'oci.invalid_user');
  }
  const [userPart, groupPart] = parts as [string, string | undefined];

  let uid: number;
  let gid = 0;
  let name: string | undefined;
  if (isNumeric(userPart)) {
    uid = parseId(userPart, field);
    const entry = db.passwd?.find((e) => e.uid === uid);
    if (entry) {
      name = entry.name;
      gid = entry.gid;
    }
  } else {
    const entry = db.passwd?.find((e) => e.name === userPart);
    if (!entry) throw errors.invalidArgument('oci.user_not_found', `${field}: no user ${JSON.stringify(userPart)} in the image's /etc/passwd`);
    uid = entry.uid;
    gid = entry.gid;
    name = entry.name;
  }

  if (groupPart !== undefined) {
    if (isNumeric(groupPart)) {
      gid = parseId(groupPart, field);
    } else {
      const g = db.group?.find((e) => e.name === groupPart);
      if (!g) throw errors.invalidArgument('oci.group_not_found', `${field}: no group ${JSON.stringify(groupPart)} in the image's /etc/group`);
      gid = g.gid;
    }
  }
  return name === undefined ? { uid, gid } : { uid, gid, name };
}

/**
 * Gids of the groups in /etc/group that list the user as a member, in file order. Like
 * containerd, a group named exactly like the user is left out (it is the user's own group,
 * normally the primary one, which is added separately).
 */
export function imageGroupsOf(user: ResolvedUser, db: UserDb): number[] {
  const name = user.name ?? db.passwd?.find((e) => e.uid === user.uid)?.name;
  if (name === undefined || !db.group) return [];
  return db.group.filter((g) => g.name !== name && g.members.includes(name)).map((g) => g.gid);
}

/** Order-preserving de-duplication. */
export function uniqueIds(ids: Iterable<number>): number[] {
  return [...new Set(ids)];
}
