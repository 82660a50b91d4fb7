/**
 * The one error catalogue of berth.
 *
 * Library code throws BerthError with a kind (which becomes a gRPC / ttrpc status code at the
 * edge, in exactly one place per transport) and a stable machine-readable code. Context is
 * added at the edges; the message names the field or object that is wrong.
 */

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

export class BerthError extends Error {
  readonly kind: ErrorKind;
  /** Stable code, e.g. "image.not_found", "ttrpc.frame_too_large". */
  readonly code: string;

  constructor(kind: ErrorKind, code: string, message: string, options?: { cause?: unknown }) {
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
    return new BerthError(this.kind, this.code, `${context}: ${this.message}`, { cause: this });
  }
}

export const errors = {
  invalidArgument: (code: string, msg: string, cause?: unknown) => new BerthError('InvalidArgument', code, msg, { cause }),
  notFound: (code: string, msg: string, cause?: unknown) => new BerthError('NotFound', code, msg, { cause }),
  alreadyExists: (code: string, msg: string, cause?: unknown) => new BerthError('AlreadyExists', code, msg, { cause }),
  failedPrecondition: (code: string, msg: string, cause?: unknown) => new BerthError('FailedPrecondition', code, msg, { cause }),
  unavailable: (code: string, msg: string, cause?: unknown) => new BerthError('Unavailable', code, msg, { cause }),
  deadlineExceeded: (code: string, msg: string, cause?: unknown) => new BerthError('DeadlineExceeded', code, msg, { cause }),
  internal: (code: string, msg: string, cause?: unknown) => new BerthError('Internal', code, msg, { cause }),
  unimplemented: (code: string, msg: string, cause?: unknown) => new BerthError('Unimplemented', code, msg, { cause }),
  unauthenticated: (code: string, msg: string, cause?: unknown) => new BerthError('Unauthenticated', code, msg, { cause }),
  permissionDenied: (code: string, msg: string, cause?: unknown) => new BerthError('PermissionDenied', code, msg, { cause }),
  resourceExhausted: (code: string, msg: string, cause?: unknown) => new BerthError('ResourceExhausted', code, msg, { cause }),
  canceled: (code: string, msg: string, cause?: unknown) => new BerthError('Canceled', code, msg, { cause }),
};

export function isBerthError(err: unknown, kind?: ErrorKind): err is BerthError {
  return err instanceof BerthError && (kind === undefined || err.kind === kind);
}

/** Any thrown value → BerthError (unknown errors become Internal, keeping the cause). */
export function toBerthError(err: unknown): BerthError {
  if (err instanceof BerthError) return err;
  // A full disk (or quota) is the node's state, not a bug: ResourceExhausted, naming the path.
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  if (err instanceof Error && (errno === 'ENOSPC' || errno === 'EDQUOT')) {
    return new BerthError('ResourceExhausted', 'storage.no_space', `no space left on device (${errno}): ${err.message}`, { cause: err });
  }
  if (err instanceof Error) return new BerthError('Internal', 'internal', err.message, { cause: err });
  return new BerthError('Internal', 'internal', String(err));
}

/** Status code number received from a peer (gRPC/ttrpc) → BerthError. */
export function fromStatus(code: number, message: string): BerthError {
  const kind = kindByCode.get(code) ?? 'Internal';
  return new BerthError(kind, `status.${kind}`, message);
}
