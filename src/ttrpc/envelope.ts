/**
 * The ttrpc envelope messages (proto/ttrpc/ttrpc.proto) on the lean codec (pb.ts), so that a
 * ttrpc endpoint does not load protobuf-es just to frame calls.
 */
import { decode, encode, schema, AnyS, type Any } from './pb.js';

export interface KeyValue {
  key: string;
  value: string;
}

export interface Request {
  service: string;
  method: string;
  payload: Uint8Array;
  timeoutNano: bigint;
  metadata: KeyValue[];
}

export interface Status {
  code: number;
  message: string;
  details: Any[];
}

export interface Response {
  status: Status | undefined;
  payload: Uint8Array;
}

const KeyValueS = schema('ttrpc.KeyValue', [
  [1, 'key', 'string'],
  [2, 'value', 'string'],
]);
const RequestS = schema('ttrpc.Request', [
  [1, 'service', 'string'],
  [2, 'method', 'string'],
  [3, 'payload', 'bytes'],
  [4, 'timeoutNano', 'int64'],
  [5, 'metadata', KeyValueS, 'repeated'],
]);
const StatusS = schema('google.rpc.Status', [
  [1, 'code', 'int32'],
  [2, 'message', 'string'],
  [3, 'details', AnyS, 'repeated'],
]);
const ResponseS = schema('ttrpc.Response', [
  [1, 'status', StatusS],
  [2, 'payload', 'bytes'],
]);

export function encodeRequest(r: Partial<Request>): Uint8Array {
  return encode(RequestS, r);
}

export function decodeRequest(b: Uint8Array): Request {
  return decode(RequestS, b) as unknown as Request;
}

export function encodeResponse(r: { status?: { code: number; message: string }; payload?: Uint8Array }): Uint8Array {
  return encode(ResponseS, r);
}

export function decodeResponse(b: Uint8Array): Response {
  return decode(ResponseS, b) as unknown as Response;
}
