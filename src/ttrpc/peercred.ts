/**
 * Peer credentials of a connected unix socket (SO_PEERCRED), read with getsockopt(2) through
 * koffi. The credentials are those of the peer at connect(2) time (socket(7)).
 */

import type { Socket } from 'node:net';
import { libc as loadLibc } from '../libc.js';

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** Decides whether a connection may be served; `undefined` when credentials are unavailable. */
export type PeerCheck = (peer: PeerCredentials | undefined) => boolean;

const SOL_SOCKET = 1;
const SO_PEERCRED = 17; // Linux value on all architectures Node supports
const UCRED_SIZE = 12; // struct ucred { pid_t pid; uid_t uid; gid_t gid; }

type GetSockOpt = (fd: number, level: number, name: number, out: Buffer, len: number[]) => number;
// Process-wide: libc getsockopt, bound once (koffi handles belong to the process).
let getsockopt: GetSockOpt | null | undefined;

function loadGetsockopt(): GetSockOpt | null {
  if (getsockopt !== undefined) return getsockopt;
  try {
    // Loaded on first use: processes that only act as ttrpc clients don't pay for koffi.
    getsockopt = loadLibc().lib.func('int getsockopt(int, int, int, _Out_ void *optval, _Inout_ uint32_t *optlen)') as GetSockOpt;
  } catch {
    getsockopt = null; // no usable libc binding: credentials read as unknown (checks then refuse)
  }
  return getsockopt;
}

/** The OS fd behind a net.Socket (libuv keeps it on the internal handle). */
function socketFd(socket: Socket): number | undefined {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } })._handle;
  const fd = handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** SO_PEERCRED of a connected unix socket, or undefined if not a unix socket / not readable. */
export function peerCredentials(socket: Socket): PeerCredentials | undefined {
  const fd = socketFd(socket);
  const fn = loadGetsockopt();
  if (fd === undefined || !fn) return undefined;
  const buf = Buffer.alloc(UCRED_SIZE);
  const len = [UCRED_SIZE];
  if (fn(fd, SOL_SOCKET, SO_PEERCRED, buf, len) !== 0 || len[0] !== UCRED_SIZE) return undefined;
  return { pid: buf.readInt32LE(0), uid: buf.readUInt32LE(4), gid: buf.readUInt32LE(8) };
}

/** Accept only peers whose uid is in `uids`; unknown credentials are refused. */
export function requireUid(...uids: number[]): PeerCheck {
  const allowed = new Set(uids);
  return (peer) => peer !== undefined && allowed.has(peer.uid);
}

/** Accept only peers running as this process's effective uid (Go ttrpc's RequireSameUser, uid only). */
export function requireSameUser(): PeerCheck {
  return requireUid(process.geteuid?.() ?? process.getuid?.() ?? 0);
}

/** Serve every connection without looking at credentials. */
export const allowAnyPeer: PeerCheck = () => true;
