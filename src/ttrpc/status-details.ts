/**
 * A BerthError's code as a status detail: one google.rpc.ErrorInfo (reason = the code, domain
 * berth.io) packed in the status details. ttrpc sends it in ttrpc.Status.details, so a code
 * thrown in berth-shim reaches berthd intact; the CRI server sends the same google.rpc.Status
 * bytes as gRPC's `grpc-status-details-bin` trailer, where grpc-go's status.FromError().Details()
 * finds it. Built on the lean codec (pb.ts) so berth-shim loads nothing more for it.
 */
import { google, ttrpc } from '../api/shim_lean.js';
import { ERROR_DOMAIN } from '../error-codes.js';
import { decode, encode, type Any } from './pb.js';

/** The type URL google.rpc.ErrorInfo is packed with (the one grpc-go and googleapis use). */
export const ERROR_INFO_TYPE_URL = 'type.googleapis.com/google.rpc.ErrorInfo';

/** The details of a status carrying `code`: one ErrorInfo. */
export function errorInfoDetails(code: string): Any[] {
  return [{ typeUrl: ERROR_INFO_TYPE_URL, value: encode(google.rpc.ErrorInfoS, { reason: code, domain: ERROR_DOMAIN, metadata: {} }) }];
}

/** The berth code in a status's details, if one of them is a berth ErrorInfo. Never throws. */
export function codeFromDetails(details: readonly Any[] | undefined): string | undefined {
  for (const d of details ?? []) {
    if (d.typeUrl !== ERROR_INFO_TYPE_URL && !d.typeUrl.endsWith('/google.rpc.ErrorInfo') && d.typeUrl !== 'google.rpc.ErrorInfo') continue;
    try {
      const info = decode(google.rpc.ErrorInfoS, d.value) as unknown as google.rpc.ErrorInfo;
      if (info.domain === ERROR_DOMAIN && info.reason !== '') return info.reason;
    } catch {
      // A malformed detail is ignored: the status code and message still stand.
    }
  }
  return undefined;
}

/** google.rpc.Status bytes (ttrpc.Status is wire-identical) with the code's ErrorInfo. */
export function encodeRpcStatus(status: number, message: string, code: string): Uint8Array {
  return encode(ttrpc.StatusS, { code: status, message, details: errorInfoDetails(code) });
}

/** Decodes google.rpc.Status bytes (e.g. a `grpc-status-details-bin` trailer). */
export function decodeRpcStatus(bytes: Uint8Array): ttrpc.Status {
  return decode(ttrpc.StatusS, bytes) as unknown as ttrpc.Status;
}
