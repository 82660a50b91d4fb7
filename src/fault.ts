/**
 * Fault injection at named steps, for the fault tests (issue 12): kill -9 of berthd, a step
 * that fails, or a pause during which a test kills a shim, conmon or runc.
 *
 * `BERTH_FAULT=<step>:<action>[,<step>:<action>…]`, read once at start. A step is
 * `<RPC>.<step>` (before the step runs) or `<RPC>.<step>.done` (after it returned), e.g.
 * `RunPodSandbox.cni-add:kill`, `CreateContainer.snapshot.done:kill`. Actions:
 * - `kill`: SIGKILL berthd itself (a crash at exactly that point);
 * - `fail`: the step throws Unavailable `fault.injected` (the RPC unwinds as after any error);
 * - `pause`: write `<BERTH_FAULT_DIR>/<step>` (berthd's pid in it) and wait until the test
 *   removes that file, then go on (BERTH_FAULT_DIR defaults to `<tmpdir>/berth-faults-<pid>`).
 *
 * Unset, `faultPoint` is undefined and `faultable` returns its function unchanged: callers
 * write `await faultPoint?.('…')`, so the steps cost nothing in production.
 *
 * Steps (the spans of the RPCs' traces, see each handler): RunPodSandbox.{reserve-name,
 * resolve-runtime, record-create, pin, sandbox-files, ensure-image, snapshot, spec, cni-add,
 * task-create, task-start, hosts, record-ready}; CreateContainer.{reserve_name, cdi_resolve,
 * resolve_image, snapshot, idmap_mounts, read_image_files, spec, stdio, task_create, record};
 * StartContainer.task_start; StopPodSandbox.{containers, pause, record, shm, network, unpin};
 * PullImage.{resolve, config, layers, sync, record} (no .done forms for StopPodSandbox and PullImage).
 */
import { writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errors } from './errors.js';

export type FaultAction = 'pause' | 'kill' | 'fail';
const ACTIONS: readonly FaultAction[] = ['pause', 'kill', 'fail'];

/** Parses a BERTH_FAULT value; throws on a malformed entry (berthd refuses to start). */
export function parseFaults(text: string | undefined): Map<string, FaultAction> {
  const plan = new Map<string, FaultAction>();
  for (const raw of (text ?? '').split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const at = entry.lastIndexOf(':');
    const step = entry.slice(0, at);
    const action = entry.slice(at + 1) as FaultAction;
    if (at <= 0 || !/^[A-Za-z]+\.[A-Za-z0-9_.-]+$/.test(step) || !ACTIONS.includes(action)) {
      throw errors.invalidArgument('fault.bad_spec', `BERTH_FAULT: ${JSON.stringify(entry)} is not <RPC>.<step>[.done]:<pause|kill|fail>`);
    }
    plan.set(step, action);
  }
  return plan;
}

/** Where pause markers go. */
export function faultDir(env: NodeJS.ProcessEnv = process.env): string {
  return env['BERTH_FAULT_DIR'] || join(tmpdir(), `berth-faults-${process.pid}`);
}

/** The fault plan of this process (empty when BERTH_FAULT is unset). */
const plan = parseFaults(process.env['BERTH_FAULT']);

async function trigger(step: string): Promise<void> {
  const action = plan.get(step);
  if (!action) return;
  process.stderr.write(`berth fault: ${action} at ${step}\n`);
  if (action === 'kill') {
    process.kill(process.pid, 'SIGKILL');
    // Never returns: the signal is delivered before the next tick.
    await new Promise(() => undefined);
  }
  if (action === 'fail') throw errors.unavailable('fault.injected', `fault injected at ${step} (BERTH_FAULT)`);
  const dir = faultDir();
  mkdirSync(dir, { recursive: true });
  const marker = join(dir, step);
  writeFileSync(marker, `${process.pid}\n`);
  while (existsSync(marker)) await new Promise((r) => setTimeout(r, 20));
}

/** Checks one named step; undefined when no fault is configured at all. */
export const faultPoint: ((step: string) => Promise<void>) | undefined = plan.size > 0 ? trigger : undefined;

/** `fn` with the step's faults around it (`<step>` before, `<step>.done` after); `fn` itself when none are set. */
export function faultable<T>(step: string, fn: () => Promise<T> | T): () => Promise<T> | T {
  if (plan.size === 0) return fn;
  return async () => {
    await trigger(step);
    const v = await fn();
    await trigger(`${step}.done`);
    return v;
  };
}
