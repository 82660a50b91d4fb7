/**
 * The metav1.Status objects written to the error stream when a remote command ends, in the
 * shape client-go's remotecommand decodes: v4+ clients parse JSON and read the exit code from
 * reason "NonZeroExitCode" + details.causes[{reason: "ExitCode", message: "<n>"}]; v1–v3
 * clients treat any text on the error stream as the failure message and nothing as success.
 */
import { statusIsJson } from './protocol.js';

export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

export interface Status {
  metadata: Record<string, never>;
  status: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  details?: { causes: StatusCause[] };
  code?: number;
}

export const NON_ZERO_EXIT_CODE_REASON = 'NonZeroExitCode';
export const EXIT_CODE_CAUSE = 'ExitCode';

export function successStatus(): Status {
  return { metadata: {}, status: 'Success' };
}

export function exitCodeStatus(exitCode: number): Status {
  if (exitCode === 0) return successStatus();
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: exit status ${exitCode}`,
    reason: NON_ZERO_EXIT_CODE_REASON,
    details: { causes: [{ reason: EXIT_CODE_CAUSE, message: String(exitCode) }] },
  };
}

export function internalErrorStatus(message: string): Status {
  return {
    metadata: {},
    status: 'Failure',
    message: `Internal error occurred: ${message}`,
    reason: 'InternalError',
    details: { causes: [{ message }] },
    code: 500,
  };
}

/** Bytes to write on the error stream for this protocol; empty means write nothing. */
export function encodeStatus(protocol: string, status: Status): Buffer {
  if (statusIsJson(protocol)) return Buffer.from(JSON.stringify(status));
  if (status.status === 'Success') return Buffer.alloc(0);
  return Buffer.from(status.message ?? 'error');
}
