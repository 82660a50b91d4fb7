/**
 * The contract between the streaming server and whatever runs processes (the lead wires it to
 * the shim's Exec/Attach/ResizePty/CloseIO and to a netns dialer for port-forward).
 */
import type { Duplex, Readable, Writable } from 'node:stream';

export interface TerminalSize {
  width: number;
  height: number;
}

export interface StreamIO {
  /** Client input; ends when the client closes stdin. Absent when stdin was not requested. */
  stdin?: Readable;
  /** Process stdout (with a TTY: the terminal output). End it, or let the server end it after the call resolves. */
  stdout?: Writable;
  /** Process stderr; never present with a TTY. */
  stderr?: Writable;
  tty: boolean;
  /** Terminal size changes sent by the client (TTY only; otherwise an iterable that just ends). */
  resize: AsyncIterable<TerminalSize>;
  /** Aborted when the client's connection goes away (attach should detach then). */
  signal: AbortSignal;
}

export interface StreamingBackend {
  /** Runs cmd in the container; resolves with its exit code once it has exited and its output was written. */
  exec(containerId: string, cmd: string[], io: StreamIO): Promise<{ exitCode: number }>;
  /** Attaches to the container's main process; resolves when the attachment ends. */
  attach(containerId: string, io: StreamIO): Promise<void>;
  /**
   * Connects to localhost:port inside the pod's network namespace and pipes it both ways with
   * `stream`; resolves when both directions are done, rejects if the connection fails.
   */
  portForward(podSandboxId: string, port: number, stream: Duplex): Promise<void>;
}

/** The CRI ExecRequest fields the server keeps (field names as in runtime.v1). */
export interface ExecRequest {
  containerId: string;
  cmd: string[];
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

/** The CRI AttachRequest fields the server keeps. */
export interface AttachRequest {
  containerId: string;
  stdin: boolean;
  tty: boolean;
  stdout: boolean;
  stderr: boolean;
}

/** The CRI PortForwardRequest fields the server keeps. */
export interface PortForwardRequest {
  podSandboxId: string;
  port: number[];
}

export type CachedRequest =
  { kind: 'exec'; request: ExecRequest } | { kind: 'attach'; request: AttachRequest } | { kind: 'portforward'; request: PortForwardRequest };
