/**
 * Helpers for container tests over the CRI: run a pod, build container configs, run a
 * container to its exit and read its CRI log.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { ContainerState, type ContainerConfigSchema, type PodSandboxConfigSchema, type ContainerStatus } from '../../src/api/cri/runtime/v1/api_pb.js';
import type { CriEnv } from './cri-env.js';

export type ContainerConfigInit = MessageInitShape<typeof ContainerConfigSchema>;
export type PodConfigInit = MessageInitShape<typeof PodSandboxConfigSchema>;

let seq = 0;

export interface TestPod {
  id: string;
  config: PodConfigInit;
  logDir: string;
  /** Stop and remove the pod (its containers go with it), remove the log dir. */
  remove(): Promise<void>;
}

export async function runPod(env: CriEnv, extra: Partial<PodConfigInit> = {}, runtimeHandler = ''): Promise<TestPod> {
  const n = `p${process.pid}-${++seq}`;
  const logDir = mkdtempSync(join(tmpdir(), 'berth-podlogs-'));
  const config: PodConfigInit = {
    metadata: { name: n, namespace: 'default', uid: `uid-${n}`, attempt: 0 },
    hostname: n,
    logDirectory: logDir,
    linux: {},
    ...extra,
  } as PodConfigInit;
  let id: string;
  try {
    id = (await env.berthd.cri.runtime.runPodSandbox({ config, runtimeHandler })).podSandboxId;
  } catch (err) {
    rmSync(logDir, { recursive: true, force: true });
    throw err;
  }
  return {
    id,
    config,
    logDir,
    async remove() {
      await env.berthd.cri.runtime.stopPodSandbox({ podSandboxId: id }).catch(() => undefined);
      await env.berthd.cri.runtime.removePodSandbox({ podSandboxId: id }).catch(() => undefined);
      rmSync(logDir, { recursive: true, force: true });
    },
  };
}

export function busyboxConfig(env: CriEnv, name: string, command: string[], extra: Partial<ContainerConfigInit> = {}): ContainerConfigInit {
  return {
    metadata: { name, attempt: 0 },
    image: { image: env.busybox.ref },
    command,
    logPath: `${name}.log`,
    linux: {},
    ...extra,
  } as ContainerConfigInit;
}

export async function createContainer(env: CriEnv, pod: TestPod, config: ContainerConfigInit): Promise<string> {
  const r = await env.berthd.cri.runtime.createContainer({ podSandboxId: pod.id, config, sandboxConfig: pod.config });
  return r.containerId;
}

export async function status(env: CriEnv, id: string): Promise<ContainerStatus> {
  const r = await env.berthd.cri.runtime.containerStatus({ containerId: id });
  return r.status!;
}

export async function waitForState(env: CriEnv, id: string, state: ContainerState, timeoutMs = 20_000): Promise<ContainerStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await status(env, id);
    if (s.state === state) return s;
    if (Date.now() > deadline) throw new Error(`container ${id} did not reach state ${ContainerState[state]} (is ${ContainerState[s.state]})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface LogLine {
  stream: 'stdout' | 'stderr';
  tag: 'P' | 'F';
  msg: string;
  ts: string;
}

/** Parses a CRI log file; throws on a line not in the CRI format. */
export function readCriLog(path: string): LogLine[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)) (stdout|stderr) ([PF]) ([^\n]*)$/.exec(l);
      if (!m) throw new Error(`not a CRI log line: ${JSON.stringify(l)}`);
      return { ts: m[1]!, stream: m[2] as LogLine['stream'], tag: m[3] as LogLine['tag'], msg: m[4]! };
    });
}

/** stdout+stderr messages of a log, in order. */
export function logText(path: string): string {
  return readCriLog(path)
    .map((l) => l.msg)
    .join('\n');
}

/** Create, start, wait for exit; returns the id, the final status and the log lines. */
export async function runToExit(
  env: CriEnv,
  pod: TestPod,
  config: ContainerConfigInit,
  timeoutMs = 20_000,
): Promise<{ id: string; status: ContainerStatus; log: LogLine[] }> {
  const id = await createContainer(env, pod, config);
  await env.berthd.cri.runtime.startContainer({ containerId: id });
  const s = await waitForState(env, id, ContainerState.CONTAINER_EXITED, timeoutMs);
  // The exit is recorded once the shim has flushed the output; re-read to be safe.
  return { id, status: s, log: readCriLog(s.logPath) };
}
