/**
 * berth's one error type.
 *
 * Library code throws BerthError with a kind (which becomes a gRPC / ttrpc status code at the
 * edge, in exactly one place per transport) and a stable machine-readable code from the
 * catalogue in error-codes.ts (the factories accept only a code of the matching kind). Context
 * is added at the edges; the message names the field or object that is wrong.
 */
import { type CodeOf, type ErrorCode, type KindOf, isErrorCode, kindOf } from './error-codes.js';

export type { ErrorCode } from './error-codes.js';

export type ErrorKind =
  | 'Canceled'
  | 'InvalidArgument'
  | 'DeadlineExceeded'
  | 'NotFound'
  | 'AlreadyExists'
  | 'PermissionDenied'
  | 'ResourceExhausted'
  | 'FailedPrecondition'
  | 'Aborted'
  | 'OutOfRange'
  | 'Unimplemented'
  | 'Internal'
  | 'Unavailable'
  | 'Unauthenticated';

/** gRPC status code numbers (google.rpc.Code), shared by gRPC and ttrpc. */
export const StatusCode: Record<ErrorKind | 'OK' | 'Unknown', number> = {
  OK: 0,
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Aborted: 10,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
  Unauthenticated: 16,
};

const kindByCode = new Map<number, ErrorKind>(
  Object.entries(StatusCode)
    .filter(([k]) => k !== 'OK' && k !== 'Unknown')
    .map(([k, v]) => [v, k as ErrorKind]),
);

/** The constructor's arguments: one tuple per code, with that code's kind. */
export type BerthErrorArgs = {
  [C in ErrorCode]: [kind: KindOf<C>, code: C, message: string, options?: { cause?: unknown }];
}[ErrorCode];

export class BerthError extends Error {
  readonly kind: ErrorKind;
  /** Stable code from error-codes.ts, e.g. "image.not_found", "ttrpc.message_too_large". */
  readonly code: ErrorCode;

  /** `new BerthError(kind, code, …)` compiles only with the kind the catalogue gives the code. */
  constructor(...[kind, code, message, options]: BerthErrorArgs) {
    super(message, options);
    this.name = 'BerthError';
    this.kind = kind;
    this.code = code;
  }

  /** The numeric gRPC status code for this error. */
  get status(): number {
    return StatusCode[this.kind];
  }

  /** Same error kind and code, message prefixed with context. */
  wrap(context: string): BerthError {
    return berthError(this.code, `${context}: ${this.message}`, this);
  }
}

export const errors = {
  invalidArgument: (code: CodeOf<'InvalidArgument'>, msg: string, cause?: unknown): BerthError => berthError(code, msg, cause),
  notFound: (code: CodeOf<'NotFound'>, msg: string, cause?: unknown): BerthError => berthError(code, msg, cause),
  alreadyExists: (code: CodeOf<'AlreadyExists'>, msg: string, cause?: unknown): BerthError => berthError(code, msg, cause),
  failedPrecondition: (code: CodeOf<'FailedPrecondition'>, msg: string, cause?: unknown): BerthError => berthError(code, msg, cause),
  unavailable: (code: CodeOf<'Unavailable'>, msg: string, cause?: unknown): BerthError => berthError(code, msg, cause),
  deadlineExceeded: (code: CodeOf<'DeadlineExceeded'>, msg: string, cause?: unknown): BerthError => berthError(code, msg, cause),
  internal: (code: CodeOf<'Internal'>, msg: string, cause?: unknown): BerthError => berthError(code, msg, cause),
  unimplemented: (code: CodeOf<'Unimplemented'>, msg: string, cause?: unknown): BerthError => berthError(code, msg, cause),
  unauthenticated: (code: CodeOf<'Unauthenticated'>, msg: string, cause?: unknown): BerthError => berthError(code, msg, cause),
  permissionDenied: (code: CodeOf<'PermissionDenied'>, msg: string, cause?: unknown): BerthError => berthError(code, msg, cause),
  resourceExhausted: (code: CodeOf<'ResourceExhausted'>, msg: string, cause?: unknown): BerthError => berthError(code, msg, cause),
  canceled: (code: CodeOf<'Canceled'>, msg: string, cause?: unknown): BerthError => berthError(code, msg, cause),
};

/** A BerthError of `code`, its kind taken from the catalogue (for codes chosen at run time). */
export function berthError(code: ErrorCode, msg: string, cause?: unknown): BerthError {
  return new BerthError(...([kindOf(code), code, msg, cause === undefined ? undefined : { cause }] as BerthErrorArgs));
}

export function isBerthError(err: unknown, kind?: ErrorKind): err is BerthError {
  return err instanceof BerthError && (kind === undefined || err.kind === kind);
}

/** True when `err` is a BerthError with this code: the one way to test for a code. */
export function hasCode<C extends ErrorCode>(err: unknown, code: C): err is BerthError & { readonly code: C } {
  return err instanceof BerthError && err.code === code;
}

/** Any thrown value → BerthError (unknown errors become Internal, keeping the cause). */
export function toBerthError(err: unknown): BerthError {
  if (err instanceof BerthError) return err;
  // A full disk (or quota) is the node's state, not a bug: ResourceExhausted, naming the path.
  // SQLite (better-sqlite3's SqliteError) says SQLITE_FULL when a write to a database, its WAL
  // or journal finds the disk full (its unix VFS turns ENOSPC on write into SQLITE_FULL), and
  // SQLITE_IOERR_SHMSIZE when it cannot grow the WAL index file (-shm) for want of room.
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  if (err instanceof Error && (errno === 'ENOSPC' || errno === 'EDQUOT' || errno === 'SQLITE_FULL' || errno === 'SQLITE_IOERR_SHMSIZE')) {
    return new BerthError('ResourceExhausted', 'storage.no_space', `no space left on device (${errno}): ${err.message}`, { cause: err });
  }
  if (err instanceof Error) return new BerthError('Internal', 'internal.unexpected', err.message, { cause: err });
  return new BerthError('Internal', 'internal.unexpected', String(err));
}

/** The code used for a peer's status that carries no berth code (or one this build does not know). */
const PEER_STATUS_CODES: Record<ErrorKind, ErrorCode> = {
  Canceled: 'status.canceled',
  InvalidArgument: 'status.invalid_argument',
  DeadlineExceeded: 'status.deadline_exceeded',
  NotFound: 'status.not_found',
  AlreadyExists: 'status.already_exists',
  PermissionDenied: 'status.permission_denied',
  ResourceExhausted: 'status.resource_exhausted',
  FailedPrecondition: 'status.failed_precondition',
  Aborted: 'status.aborted',
  OutOfRange: 'status.out_of_range',
  Unimplemented: 'status.unimplemented',
  Internal: 'status.internal',
  Unavailable: 'status.unavailable',
  Unauthenticated: 'status.unauthenticated',
};

/**
 * Status received from a peer (gRPC/ttrpc) → BerthError. `code` is the berth code the peer sent
 * with it (ErrorInfo reason), if any: kept when this build knows it with the same kind, so an
 * error keeps its code across berth-shim → berthd → CRI client.
 */
export function fromStatus(status: number, message: string, code?: string): BerthError {
  const kind = kindByCode.get(status) ?? 'Internal';
  if (code !== undefined && isErrorCode(code) && kindOf(code) === kind) return berthError(code, message);
  return berthError(PEER_STATUS_CODES[kind], message);
}
