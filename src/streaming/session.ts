/** Transport-independent part of exec/attach: run the backend call and turn its outcome into a Status. */
import type { Writable } from 'node:stream';
import type { Logger } from '../log.js';
import { exitCodeStatus, internalErrorStatus, successStatus, type Status } from './status.js';
import type { CachedRequest, StreamIO, StreamingBackend } from './types.js';

export type RemoteCommandRequest = Extract<CachedRequest, { kind: 'exec' | 'attach' }>;

export async function runRemoteCommand(backend: StreamingBackend, req: RemoteCommandRequest, io: StreamIO, log: Logger): Promise<Status> {
  try {
    if (req.kind === 'exec') {
      const { exitCode } = await backend.exec(req.request.containerId, req.request.cmd, io);
      return exitCodeStatus(exitCode);
    }
    await backend.attach(req.request.containerId, io);
    return successStatus();
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    log.warn(`${req.kind} failed`, { container: req.request.containerId, err: msg });
    return internalErrorStatus(req.kind === 'exec' ? `error executing command in container: ${msg}` : `error attaching to container: ${msg}`);
  }
}

/** Ends a writable (if the backend did not) and waits until its data is flushed or it is gone. */
export function finishWritable(w: Writable | undefined): Promise<void> {
  if (!w || w.writableFinished || w.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      w.off('finish', done);
      w.off('close', done);
      w.off('error', done);
      resolve();
    };
    w.on('finish', done);
    w.on('close', done);
    w.on('error', done);
    if (!w.writableEnded) w.end();
  });
}
