/**
 * The one place where errors become gRPC statuses. Every CRI handler runs inside `instrument`:
 * it logs the call, records its latency, and maps a thrown BerthError to its status code and
 * message (unknown errors become INTERNAL with their message; the daemon never crashes on a
 * handler's failure). The error's code (error-codes.ts) goes to the client twice: as a
 * google.rpc.ErrorInfo in the status details (`grpc-status-details-bin`, what grpc-go's
 * status.Details() reads) and as the plain `berth-error-code` trailer; the message is unchanged.
 */
import * as grpc from '@grpc/grpc-js';
import { errors, toBerthError, type ErrorCode } from '../../errors.js';
import { ERROR_CODE_TRAILER } from '../../error-codes.js';
import { encodeRpcStatus } from '../../ttrpc/status-details.js';
import type { Logger } from '../../log.js';

export interface RpcObserver {
  /** Called once per finished call (metrics). */
  observe(method: string, code: number, seconds: number): void;
}

/** Per-call context handed to every handler. */
export interface CallContext {
  signal: AbortSignal;
  /** Metadata namespace: `berth-namespace` request metadata, else k8s.io (the CRI's). */
  namespace: string;
}

export const NAMESPACE_METADATA_KEY = 'berth-namespace';
export const CRI_NAMESPACE = 'k8s.io';
const namespacePattern = /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,74}[A-Za-z0-9])?$/;

export type UnaryHandler = (req: unknown, ctx: CallContext) => Promise<unknown>;
/**
 * A server stream's call: `open()` sends the response headers now, before any message, so a
 * client learns the stream is established (GetContainerEvents calls it once it is subscribed:
 * every event after the client saw the headers reaches it). The first write sends them too.
 */
export interface StreamCallContext extends CallContext {
  open(): void;
}

export type StreamHandler = (req: unknown, write: (msg: unknown) => boolean, ctx: StreamCallContext) => Promise<void>;

function namespaceOf(md: grpc.Metadata): string {
  const v = md.get(NAMESPACE_METADATA_KEY)[0];
  if (v === undefined || v === '') return CRI_NAMESPACE;
  const ns = String(v);
  if (!namespacePattern.test(ns)) {
    throw errors.invalidArgument('namespace.invalid', `metadata ${NAMESPACE_METADATA_KEY}: invalid namespace ${JSON.stringify(ns)}`);
  }
  return ns;
}

/**
 * Longest status message sent. The message travels in an HTTP/2 trailer: one echoing a 1 MiB
 * id overran the client's header list limit and left the call hanging (grpc-js) or the
 * connection reset (kubelet's 16 KiB default).
 */
export const MAX_STATUS_DETAILS = 1024;

export function capDetails(s: string): string {
  if (s.length <= MAX_STATUS_DETAILS) return s;
  return `${s.slice(0, MAX_STATUS_DETAILS - 40)}… (${s.length} characters, cut)`;
}

/** The trailer holding the google.rpc.Status (with its details) of a failed call. */
export const STATUS_DETAILS_TRAILER = 'grpc-status-details-bin';

function statusOf(err: unknown): { code: number; details: string; errorCode: ErrorCode; metadata: grpc.Metadata } {
  const e = toBerthError(err);
  const details = capDetails(e.message);
  const metadata = new grpc.Metadata();
  metadata.set(ERROR_CODE_TRAILER, e.code);
  metadata.set(STATUS_DETAILS_TRAILER, Buffer.from(encodeRpcStatus(e.status, details, e.code)));
  return { code: e.status, details, errorCode: e.code, metadata };
}

/**
 * The call's cancellation as an AbortSignal, made only when a handler asks for it (most never
 * do: an AbortController and the DOMException of its abort cost more than a small call's
 * answer). grpc-js reports every finished call as cancelled once its stream closes; a call that
 * already answered is not aborted.
 */
function lazyCancel(call: grpc.ServerUnaryCall<unknown, unknown>): { context(namespace: string): CallContext; done(): void } {
  let ac: AbortController | undefined;
  let cancelled = false;
  let finished = false;
  call.once('cancelled', () => {
    if (finished) return;
    cancelled = true;
    ac?.abort();
  });
  return {
    context: (namespace) => ({
      namespace,
      get signal(): AbortSignal {
        if (!ac) {
          ac = new AbortController();
          if (cancelled) ac.abort();
        }
        return ac.signal;
      },
    }),
    done: () => {
      finished = true;
    },
  };
}

export function instrumentUnary(method: string, handler: UnaryHandler, log: Logger, observer?: RpcObserver): grpc.handleUnaryCall<unknown, unknown> {
  return (call, callback) => {
    const started = process.hrtime.bigint();
    const cancel = lazyCancel(call);
    log.debug('rpc start', { method });
    Promise.resolve()
      .then(() => handler(call.request, cancel.context(namespaceOf(call.metadata))))
      .then(
        (res) => {
          cancel.done();
          const secs = Number(process.hrtime.bigint() - started) / 1e9;
          observer?.observe(method, 0, secs);
          log.debug('rpc done', { method, ms: Math.round(secs * 1000) });
          callback(null, res);
        },
        (err: unknown) => {
          cancel.done();
          const secs = Number(process.hrtime.bigint() - started) / 1e9;
          const st = statusOf(err);
          observer?.observe(method, st.code, secs);
          const level = st.code === grpc.status.INTERNAL || st.code === grpc.status.UNKNOWN ? 'error' : 'info';
          log[level]('rpc failed', { method, code: grpc.status[st.code], error_code: st.errorCode, error: st.details });
          if (level === 'error' && err instanceof Error && err.stack) log.debug('stack', { stack: err.stack });
          callback({ code: st.code, details: st.details, metadata: st.metadata } as grpc.ServiceError, null);
        },
      );
  };
}

export function instrumentServerStream(
  method: string,
  handler: StreamHandler,
  log: Logger,
  observer?: RpcObserver,
): grpc.handleServerStreamingCall<unknown, unknown> {
  return (call) => {
    const started = process.hrtime.bigint();
    const ac = new AbortController();
    call.on('cancelled', () => ac.abort());
    call.on('close', () => ac.abort());
    let headersSent = false;
    const open = () => {
      if (headersSent || ac.signal.aborted) return;
      headersSent = true;
      call.sendMetadata(new grpc.Metadata());
    };
    const write = (msg: unknown) => {
      headersSent = true;
      return call.write(msg);
    };
    Promise.resolve()
      .then(() => handler(call.request, write, { signal: ac.signal, namespace: namespaceOf(call.metadata), open }))
      .then(
        () => {
          observer?.observe(method, 0, Number(process.hrtime.bigint() - started) / 1e9);
          call.end();
        },
        (err: unknown) => {
          const st = statusOf(err);
          observer?.observe(method, st.code, Number(process.hrtime.bigint() - started) / 1e9);
          log.info('rpc stream failed', { method, code: grpc.status[st.code], error_code: st.errorCode, error: st.details });
          call.emit('error', Object.assign(new Error(st.details), { code: st.code, details: st.details, metadata: st.metadata }));
        },
      );
  };
}
