/**
 * The ttrpc envelope messages (proto/ttrpc/ttrpc.proto) on the lean codec (pb.ts), so that a
 * ttrpc endpoint does not load protobuf-es just to frame calls. The tables are generated
 * (src/api/shim_lean.ts, `npm run gen`).
 */
import { ttrpc } from '../api/shim_lean.js';
import { decode, encode } from './pb.js';

export type KeyValue = ttrpc.KeyValue;
export type Request = ttrpc.Request;
export type Status = ttrpc.Status;
export type Response = ttrpc.Response;

export function encodeRequest(r: Partial<Request>): Uint8Array {
  return encode(ttrpc.RequestS, r);
}

export function decodeRequest(b: Uint8Array): Request {
  return decode(ttrpc.RequestS, b) as unknown as Request;
}

export function encodeResponse(r: { status?: { code: number; message: string; details?: ttrpc.Status['details'] }; payload?: Uint8Array }): Uint8Array {
  return encode(ttrpc.ResponseS, r);
}

export function decodeResponse(b: Uint8Array): Response {
  return decode(ttrpc.ResponseS, b) as unknown as Response;
}
