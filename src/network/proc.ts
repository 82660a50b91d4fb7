/**
 * Small helper to run a short-lived host command (unshare, umount, mount) with a timeout and
 * captured output. Used by the netns code only; CNI plugin exec has its own runner because it
 * speaks a stdin/stdout protocol with richer error mapping.
 */
import { spawn } from 'node:child_process';
import { errors } from '../errors.js';
import type { CodeOf } from '../error-codes.js';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const OUTPUT_CAP = 64 * 1024;

export function runCommand(file: string, args: readonly string[], timeoutMs = 10_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < OUTPUT_CAP) stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < OUTPUT_CAP) stderr += d;
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(errors.internal('netns.exec_failed', `cannot run ${file}: ${err.message}`, err));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(errors.deadlineExceeded('netns.exec_timeout', `${file} ${args.join(' ')} timed out after ${timeoutMs} ms`));
        return;
      }
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Runs a command and throws an Internal error with its stderr unless it exits 0. */
export async function runChecked(file: string, args: readonly string[], code: CodeOf<'Internal'>, timeoutMs?: number): Promise<RunResult> {
  const r = await runCommand(file, args, timeoutMs);
  if (r.code !== 0) {
    const why = r.stderr.trim() || r.stdout.trim() || `exit ${r.code ?? r.signal}`;
    throw errors.internal(code, `${file} ${args.join(' ')}: ${why}`);
  }
  return r;
}
