/**
 * Bad input on every CRI RPC (issue 12, the program): one table of malformed and out-of-range
 * requests for each method of runtime.v1.RuntimeService and ImageService, sent to a real
 * berthd that holds one running pod, one created container and the busybox and pause images.
 * For each row: the gRPC code fits the input (never INTERNAL or UNKNOWN), the message names
 * the field, the daemon keeps serving (Version answers) and nothing half-made is left (pods,
 * containers, images, task bundles, netns handles, snapshots as before the table ran).
 * A method of either service missing from the table fails the test: new RPCs need rows.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ImageService, RuntimeService } from '../../src/api/cri/runtime/v1/api_pb.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { busyboxConfig, createContainer, runPod, type TestPod } from '../helpers/cri-container.js';
import { isRoot } from '../helpers/netns.js';

const skip = !isRoot() ? 'needs root' : false;
const MiB = 'x'.repeat(1024 * 1024);
const HUGE_ID = 'a'.repeat(1024 * 1024);
const UNKNOWN_ID = 'f'.repeat(64);
const S = grpc.status;

/** One bad request: the codes that fit and a pattern the message must match (the field). */
interface Row {
  rpc: string;
  what: string;
  req: (f: Fixture) => Record<string, unknown>;
  /** Accepted codes; S.OK means the input is legal and answered (e.g. an empty list). */
  codes: number[];
  field?: RegExp;
  metadata?: Record<string, string>;
}

interface Fixture {
  pod: TestPod;
  ctr: string;
  busybox: string;
  /** A pod config berthd would accept; rows spoil one field of a copy. */
  podCfg(): Record<string, any>;
  /** A container config berthd would accept. */
  ctrCfg(): Record<string, any>;
}

const R = (rpc: string) => `RuntimeService.${rpc}`;
const I = (rpc: string) => `ImageService.${rpc}`;

const rows: Row[] = [
  // --- RuntimeService ---
  {
    rpc: R('Version'),
    what: 'invalid namespace metadata',
    req: () => ({ version: 'v1' }),
    metadata: { 'berth-namespace': '../etc' },
    codes: [S.INVALID_ARGUMENT],
    field: /berth-namespace/,
  },
  { rpc: R('Version'), what: '1 MiB version string (answered)', req: () => ({ version: MiB }), codes: [S.OK] },

  { rpc: R('RunPodSandbox'), what: 'no config', req: () => ({}), codes: [S.INVALID_ARGUMENT], field: /config/ },
  {
    rpc: R('RunPodSandbox'),
    what: 'no metadata',
    req: (f) => ({ config: { ...f.podCfg(), metadata: undefined } }),
    codes: [S.INVALID_ARGUMENT],
    field: /metadata/,
  },
  {
    rpc: R('RunPodSandbox'),
    what: 'empty metadata.name',
    req: (f) => ({ config: { ...f.podCfg(), metadata: { ...f.podCfg().metadata, name: '' } } }),
    codes: [S.INVALID_ARGUMENT],
    field: /metadata\.name|name/,
  },
  {
    rpc: R('RunPodSandbox'),
    what: 'empty metadata.uid',
    req: (f) => ({ config: { ...f.podCfg(), metadata: { ...f.podCfg().metadata, uid: '' } } }),
    codes: [S.INVALID_ARGUMENT],
    field: /uid/,
  },
  {
    rpc: R('RunPodSandbox'),
    what: 'empty metadata.namespace',
    req: (f) => ({ config: { ...f.podCfg(), metadata: { ...f.podCfg().metadata, namespace: '' } } }),
    codes: [S.INVALID_ARGUMENT],
    field: /namespace/,
  },
  {
    rpc: R('RunPodSandbox'),
    what: '1 MiB metadata.name',
    req: (f) => ({ config: { ...f.podCfg(), metadata: { ...f.podCfg().metadata, name: MiB } } }),
    codes: [S.INVALID_ARGUMENT],
    field: /name/,
  },
  {
    rpc: R('RunPodSandbox'),
    what: '1 MiB hostname',
    req: (f) => ({ config: { ...f.podCfg(), hostname: MiB } }),
    codes: [S.INVALID_ARGUMENT],
    field: /hostname/,
  },
  {
    rpc: R('RunPodSandbox'),
    what: 'unknown runtime handler',
    req: (f) => ({ config: f.podCfg(), runtimeHandler: 'no-such-handler' }),
    codes: [S.INVALID_ARGUMENT, S.NOT_FOUND],
    field: /handler/,
  },
  {
    rpc: R('RunPodSandbox'),
    what: 'relative log_directory',
    req: (f) => ({ config: { ...f.podCfg(), logDirectory: 'relative/logs' } }),
    codes: [S.INVALID_ARGUMENT],
    field: /log_?directory/i,
  },
  {
    rpc: R('RunPodSandbox'),
    what: 'network namespace mode 99',
    req: (f) => ({ config: { ...f.podCfg(), linux: { securityContext: { namespaceOptions: { network: 99 } } } } }),
    codes: [S.INVALID_ARGUMENT],
    field: /network/,
  },
  {
    rpc: R('RunPodSandbox'),
    what: 'port mapping protocol 99',
    req: (f) => ({ config: { ...f.podCfg(), portMappings: [{ protocol: 99, containerPort: 80, hostPort: 0 }] } }),
    codes: [S.INVALID_ARGUMENT],
    field: /protocol/,
  },
  {
    rpc: R('RunPodSandbox'),
    what: 'port mapping container_port -1',
    req: (f) => ({ config: { ...f.podCfg(), portMappings: [{ containerPort: -1, hostPort: 0 }] } }),
    codes: [S.INVALID_ARGUMENT],
    field: /container_?port/i,
  },
  {
    rpc: R('RunPodSandbox'),
    what: 'port mapping host_port 70000',
    req: (f) => ({ config: { ...f.podCfg(), portMappings: [{ containerPort: 80, hostPort: 70000 }] } }),
    codes: [S.INVALID_ARGUMENT],
    field: /host_?port/i,
  },
  {
    rpc: R('RunPodSandbox'),
    what: 'invalid sysctl name',
    req: (f) => ({ config: { ...f.podCfg(), linux: { sysctls: { '../../proc/x': '1' } } } }),
    codes: [S.INVALID_ARGUMENT],
    field: /sysctl/,
  },
  {
    rpc: R('RunPodSandbox'),
    what: 'user namespace POD with host pid (conflicting; host network is allowed)',
    req: (f) => ({
      config: {
        ...f.podCfg(),
        linux: {
          securityContext: {
            namespaceOptions: {
              pid: 2,
              usernsOptions: { mode: 0, uids: [{ hostId: 100000, containerId: 0, length: 65536 }], gids: [{ hostId: 100000, containerId: 0, length: 65536 }] },
            },
          },
        },
      },
    }),
    codes: [S.INVALID_ARGUMENT],
    field: /pid|user/,
  },
  {
    rpc: R('RunPodSandbox'),
    what: 'user namespace POD with two uid mappings (kubelet sends one)',
    req: (f) => ({
      config: {
        ...f.podCfg(),
        linux: {
          securityContext: {
            namespaceOptions: {
              pid: 1,
              usernsOptions: {
                mode: 0,
                uids: [
                  { hostId: 100000, containerId: 0, length: 1000 },
                  { hostId: 200000, containerId: 1000, length: 1000 },
                ],
                gids: [{ hostId: 100000, containerId: 0, length: 65536 }],
              },
            },
          },
        },
      },
    }),
    codes: [S.INVALID_ARGUMENT],
    field: /userns_options\.uids/,
  },
  {
    rpc: R('RunPodSandbox'),
    what: 'user namespace POD whose gid mapping leaves container id 0 unmapped',
    req: (f) => ({
      config: {
        ...f.podCfg(),
        linux: {
          securityContext: {
            namespaceOptions: {
              pid: 1,
              usernsOptions: { mode: 0, uids: [{ hostId: 100000, containerId: 0, length: 65536 }], gids: [{ hostId: 100000, containerId: 1, length: 65536 }] },
            },
          },
        },
      },
    }),
    codes: [S.INVALID_ARGUMENT],
    field: /userns_options\.gids\[0\]\.container_id/,
  },

  { rpc: R('StopPodSandbox'), what: 'empty pod_sandbox_id', req: () => ({ podSandboxId: '' }), codes: [S.INVALID_ARGUMENT], field: /pod_?sandbox_?id/i },
  { rpc: R('StopPodSandbox'), what: 'unknown id (idempotent)', req: () => ({ podSandboxId: UNKNOWN_ID }), codes: [S.OK, S.NOT_FOUND] },
  { rpc: R('StopPodSandbox'), what: '1 MiB id', req: () => ({ podSandboxId: HUGE_ID }), codes: [S.OK, S.NOT_FOUND, S.INVALID_ARGUMENT] },
  { rpc: R('RemovePodSandbox'), what: 'empty pod_sandbox_id', req: () => ({ podSandboxId: '' }), codes: [S.INVALID_ARGUMENT], field: /pod_?sandbox_?id/i },
  { rpc: R('RemovePodSandbox'), what: 'unknown id (idempotent)', req: () => ({ podSandboxId: UNKNOWN_ID }), codes: [S.OK, S.NOT_FOUND] },
  { rpc: R('RemovePodSandbox'), what: '1 MiB id', req: () => ({ podSandboxId: HUGE_ID }), codes: [S.OK, S.NOT_FOUND, S.INVALID_ARGUMENT] },
  { rpc: R('PodSandboxStatus'), what: 'empty pod_sandbox_id', req: () => ({ podSandboxId: '' }), codes: [S.INVALID_ARGUMENT], field: /pod_?sandbox_?id/i },
  { rpc: R('PodSandboxStatus'), what: 'unknown id', req: () => ({ podSandboxId: UNKNOWN_ID }), codes: [S.NOT_FOUND], field: /sandbox/ },
  { rpc: R('PodSandboxStatus'), what: '1 MiB id', req: () => ({ podSandboxId: HUGE_ID }), codes: [S.NOT_FOUND, S.INVALID_ARGUMENT], field: /sandbox/ },
  { rpc: R('ListPodSandbox'), what: 'filter state 99', req: () => ({ filter: { state: { state: 99 } } }), codes: [S.INVALID_ARGUMENT], field: /state/ },
  { rpc: R('ListPodSandbox'), what: 'filter unknown id (empty list)', req: () => ({ filter: { id: UNKNOWN_ID } }), codes: [S.OK] },
  { rpc: R('StreamPodSandboxes'), what: 'filter state 99', req: () => ({ filter: { state: { state: 99 } } }), codes: [S.INVALID_ARGUMENT], field: /state/ },

  {
    rpc: R('CreateContainer'),
    what: 'empty pod_sandbox_id',
    req: (f) => ({ podSandboxId: '', config: f.ctrCfg(), sandboxConfig: f.pod.config }),
    codes: [S.INVALID_ARGUMENT],
    field: /pod_?sandbox_?id/i,
  },
  {
    rpc: R('CreateContainer'),
    what: 'unknown pod',
    req: (f) => ({ podSandboxId: UNKNOWN_ID, config: f.ctrCfg(), sandboxConfig: f.pod.config }),
    codes: [S.NOT_FOUND],
    field: /sandbox/,
  },
  {
    rpc: R('CreateContainer'),
    what: 'no config',
    req: (f) => ({ podSandboxId: f.pod.id, sandboxConfig: f.pod.config }),
    codes: [S.INVALID_ARGUMENT],
    field: /config/,
  },
  {
    rpc: R('CreateContainer'),
    what: 'no metadata',
    req: (f) => ({ podSandboxId: f.pod.id, config: { ...f.ctrCfg(), metadata: undefined }, sandboxConfig: f.pod.config }),
    codes: [S.INVALID_ARGUMENT],
    field: /metadata/,
  },
  {
    rpc: R('CreateContainer'),
    what: 'empty metadata.name',
    req: (f) => ({ podSandboxId: f.pod.id, config: { ...f.ctrCfg(), metadata: { name: '' } }, sandboxConfig: f.pod.config }),
    codes: [S.INVALID_ARGUMENT],
    field: /name/,
  },
  {
    rpc: R('CreateContainer'),
    what: '1 MiB metadata.name',
    req: (f) => ({ podSandboxId: f.pod.id, config: { ...f.ctrCfg(), metadata: { name: MiB } }, sandboxConfig: f.pod.config }),
    codes: [S.INVALID_ARGUMENT],
    field: /name/,
  },
  {
    rpc: R('CreateContainer'),
    what: 'no image',
    req: (f) => ({ podSandboxId: f.pod.id, config: { ...f.ctrCfg(), image: undefined }, sandboxConfig: f.pod.config }),
    codes: [S.INVALID_ARGUMENT],
    field: /image/,
  },
  {
    rpc: R('CreateContainer'),
    what: 'invalid image reference',
    req: (f) => ({ podSandboxId: f.pod.id, config: { ...f.ctrCfg(), image: { image: 'Not a ref::' } }, sandboxConfig: f.pod.config }),
    codes: [S.INVALID_ARGUMENT, S.NOT_FOUND],
    field: /image/,
  },
  {
    rpc: R('CreateContainer'),
    what: 'image not present',
    req: (f) => ({ podSandboxId: f.pod.id, config: { ...f.ctrCfg(), image: { image: 'localhost:1/absent/image:1' } }, sandboxConfig: f.pod.config }),
    codes: [S.NOT_FOUND],
    field: /image/,
  },
  {
    rpc: R('CreateContainer'),
    what: 'log_path escaping the pod log dir',
    req: (f) => ({ podSandboxId: f.pod.id, config: { ...f.ctrCfg(), logPath: '../../../etc/berth-bad-input.log' }, sandboxConfig: f.pod.config }),
    codes: [S.INVALID_ARGUMENT],
    field: /log_?path/i,
  },
  {
    rpc: R('CreateContainer'),
    what: 'relative mount container_path',
    req: (f) => ({ podSandboxId: f.pod.id, config: { ...f.ctrCfg(), mounts: [{ containerPath: 'rel/dir', hostPath: '/tmp' }] }, sandboxConfig: f.pod.config }),
    codes: [S.INVALID_ARGUMENT],
    field: /container_?path/i,
  },
  {
    rpc: R('CreateContainer'),
    what: 'mount propagation 99',
    req: (f) => ({
      podSandboxId: f.pod.id,
      config: { ...f.ctrCfg(), mounts: [{ containerPath: '/mnt', hostPath: '/tmp', propagation: 99 }] },
      sandboxConfig: f.pod.config,
    }),
    codes: [S.INVALID_ARGUMENT],
    field: /propagation/,
  },
  {
    rpc: R('CreateContainer'),
    what: 'image volume of an absent image',
    req: (f) => ({
      podSandboxId: f.pod.id,
      config: { ...f.ctrCfg(), mounts: [{ containerPath: '/v', image: { image: 'localhost:1/absent/image:1' }, readonly: true }] },
      sandboxConfig: f.pod.config,
    }),
    codes: [S.NOT_FOUND],
    field: /mounts\[0\]\.image\.image/,
  },
  {
    rpc: R('CreateContainer'),
    what: 'image volume sub path with ..',
    req: (f) => ({
      podSandboxId: f.pod.id,
      config: { ...f.ctrCfg(), mounts: [{ containerPath: '/v', image: { image: f.ctrCfg().image!.image! }, imageSubPath: '../../etc', readonly: true }] },
      sandboxConfig: f.pod.config,
    }),
    codes: [S.INVALID_ARGUMENT],
    field: /image_sub_path/,
  },
  {
    rpc: R('CreateContainer'),
    what: 'image volume with readonly false',
    req: (f) => ({
      podSandboxId: f.pod.id,
      config: { ...f.ctrCfg(), mounts: [{ containerPath: '/v', image: { image: f.ctrCfg().image!.image! } }] },
      sandboxConfig: f.pod.config,
    }),
    codes: [S.INVALID_ARGUMENT],
    field: /readonly/,
  },
  {
    rpc: R('CreateContainer'),
    what: 'mount_options outside noexec/nodev/nosuid',
    req: (f) => ({
      podSandboxId: f.pod.id,
      config: { ...f.ctrCfg(), mounts: [{ containerPath: '/mnt', hostPath: '/tmp', mountOptions: ['exec'] }] },
      sandboxConfig: f.pod.config,
    }),
    codes: [S.INVALID_ARGUMENT],
    field: /mount_options\[0\]/,
  },
  {
    rpc: R('CreateContainer'),
    what: 'pid namespace mode 99',
    req: (f) => ({
      podSandboxId: f.pod.id,
      config: { ...f.ctrCfg(), linux: { securityContext: { namespaceOptions: { pid: 99 } } } },
      sandboxConfig: f.pod.config,
    }),
    codes: [S.INVALID_ARGUMENT],
    field: /pid/,
  },
  {
    rpc: R('CreateContainer'),
    what: 'TARGET pid namespace without target_id',
    req: (f) => ({
      podSandboxId: f.pod.id,
      config: { ...f.ctrCfg(), linux: { securityContext: { namespaceOptions: { pid: 3, targetId: '' } } } },
      sandboxConfig: f.pod.config,
    }),
    codes: [S.INVALID_ARGUMENT, S.NOT_FOUND],
    field: /target/,
  },
  {
    rpc: R('CreateContainer'),
    what: 'negative memory_limit_in_bytes',
    req: (f) => ({ podSandboxId: f.pod.id, config: { ...f.ctrCfg(), linux: { resources: { memoryLimitInBytes: -5n } } }, sandboxConfig: f.pod.config }),
    codes: [S.INVALID_ARGUMENT],
    field: /memory/,
  },
  {
    rpc: R('CreateContainer'),
    what: 'oom_score_adj 5000',
    req: (f) => ({ podSandboxId: f.pod.id, config: { ...f.ctrCfg(), linux: { resources: { oomScoreAdj: 5000n } } }, sandboxConfig: f.pod.config }),
    codes: [S.INVALID_ARGUMENT],
    field: /oom/,
  },
  {
    rpc: R('CreateContainer'),
    what: 'privileged container in an unprivileged pod (conflicting)',
    req: (f) => ({ podSandboxId: f.pod.id, config: { ...f.ctrCfg(), linux: { securityContext: { privileged: true } } }, sandboxConfig: f.pod.config }),
    codes: [S.INVALID_ARGUMENT, S.FAILED_PRECONDITION],
    field: /privileged/,
  },
  {
    rpc: R('CreateContainer'),
    what: 'relative device host_path',
    req: (f) => ({
      podSandboxId: f.pod.id,
      config: { ...f.ctrCfg(), devices: [{ containerPath: '/dev/x', hostPath: 'dev/null', permissions: 'rwm' }] },
      sandboxConfig: f.pod.config,
    }),
    codes: [S.INVALID_ARGUMENT],
    field: /host_?path|device/i,
  },
  {
    rpc: R('CreateContainer'),
    what: 'same name twice (already exists)',
    req: (f) => ({ podSandboxId: f.pod.id, config: { ...f.ctrCfg(), metadata: { name: 'bad-input', attempt: 0 } }, sandboxConfig: f.pod.config }),
    codes: [S.ALREADY_EXISTS],
    field: /name|reserved|exists/,
  },

  { rpc: R('StartContainer'), what: 'empty container_id', req: () => ({ containerId: '' }), codes: [S.INVALID_ARGUMENT], field: /container_?id/i },
  { rpc: R('StartContainer'), what: 'unknown id', req: () => ({ containerId: UNKNOWN_ID }), codes: [S.NOT_FOUND], field: /container/ },
  { rpc: R('StartContainer'), what: '1 MiB id', req: () => ({ containerId: HUGE_ID }), codes: [S.NOT_FOUND, S.INVALID_ARGUMENT], field: /container/ },
  { rpc: R('StopContainer'), what: 'empty container_id', req: () => ({ containerId: '' }), codes: [S.INVALID_ARGUMENT], field: /container_?id/i },
  { rpc: R('StopContainer'), what: 'unknown id, huge timeout', req: () => ({ containerId: UNKNOWN_ID, timeout: 2n ** 62n }), codes: [S.OK, S.NOT_FOUND] },
  { rpc: R('StopContainer'), what: 'negative timeout on a created container (answered)', req: (f) => ({ containerId: f.ctr, timeout: -10n }), codes: [S.OK] },
  { rpc: R('RemoveContainer'), what: 'empty container_id', req: () => ({ containerId: '' }), codes: [S.INVALID_ARGUMENT], field: /container_?id/i },
  { rpc: R('RemoveContainer'), what: 'unknown id (idempotent)', req: () => ({ containerId: UNKNOWN_ID }), codes: [S.OK, S.NOT_FOUND] },
  { rpc: R('ListContainers'), what: 'filter state 99', req: () => ({ filter: { state: { state: 99 } } }), codes: [S.INVALID_ARGUMENT], field: /state/ },
  { rpc: R('ListContainers'), what: 'filter unknown pod (empty list)', req: () => ({ filter: { podSandboxId: UNKNOWN_ID } }), codes: [S.OK] },
  { rpc: R('StreamContainers'), what: 'filter state 99', req: () => ({ filter: { state: { state: 99 } } }), codes: [S.INVALID_ARGUMENT], field: /state/ },
  { rpc: R('ContainerStatus'), what: 'empty container_id', req: () => ({ containerId: '' }), codes: [S.INVALID_ARGUMENT], field: /container_?id/i },
  { rpc: R('ContainerStatus'), what: 'unknown id', req: () => ({ containerId: UNKNOWN_ID }), codes: [S.NOT_FOUND], field: /container/ },
  {
    rpc: R('UpdateContainerResources'),
    what: 'empty container_id',
    req: () => ({ containerId: '', linux: {} }),
    codes: [S.INVALID_ARGUMENT],
    field: /container_?id/i,
  },
  { rpc: R('UpdateContainerResources'), what: 'unknown id', req: () => ({ containerId: UNKNOWN_ID, linux: {} }), codes: [S.NOT_FOUND], field: /container/ },
  {
    rpc: R('UpdateContainerResources'),
    what: 'negative memory_limit_in_bytes',
    req: (f) => ({ containerId: f.ctr, linux: { memoryLimitInBytes: -1n } }),
    codes: [S.INVALID_ARGUMENT],
    field: /memory/,
  },
  {
    rpc: R('UpdateContainerResources'),
    what: 'negative cpu_quota below -1',
    req: (f) => ({ containerId: f.ctr, linux: { cpuQuota: -7n } }),
    codes: [S.INVALID_ARGUMENT],
    field: /cpu_?quota/i,
  },
  { rpc: R('ReopenContainerLog'), what: 'empty container_id', req: () => ({ containerId: '' }), codes: [S.INVALID_ARGUMENT], field: /container_?id/i },
  { rpc: R('ReopenContainerLog'), what: 'unknown id', req: () => ({ containerId: UNKNOWN_ID }), codes: [S.NOT_FOUND], field: /container/ },
  { rpc: R('ReopenContainerLog'), what: 'container not running', req: (f) => ({ containerId: f.ctr }), codes: [S.FAILED_PRECONDITION], field: /running/ },
  { rpc: R('ExecSync'), what: 'empty container_id', req: () => ({ containerId: '', cmd: ['true'] }), codes: [S.INVALID_ARGUMENT], field: /container_?id/i },
  { rpc: R('ExecSync'), what: 'unknown id', req: () => ({ containerId: UNKNOWN_ID, cmd: ['true'] }), codes: [S.NOT_FOUND], field: /container/ },
  { rpc: R('ExecSync'), what: 'empty cmd', req: (f) => ({ containerId: f.ctr, cmd: [] }), codes: [S.INVALID_ARGUMENT], field: /cmd/ },
  {
    rpc: R('ExecSync'),
    what: 'container not running',
    req: (f) => ({ containerId: f.ctr, cmd: ['true'] }),
    codes: [S.FAILED_PRECONDITION, S.NOT_FOUND],
    field: /running/,
  },
  {
    rpc: R('ExecSync'),
    what: 'negative timeout',
    req: (f) => ({ containerId: f.ctr, cmd: ['true'], timeout: -1n }),
    codes: [S.INVALID_ARGUMENT, S.FAILED_PRECONDITION],
    field: /timeout|running/,
  },
  {
    rpc: R('Exec'),
    what: 'empty container_id',
    req: () => ({ containerId: '', cmd: ['sh'], stdout: true }),
    codes: [S.INVALID_ARGUMENT],
    field: /container_?id/i,
  },
  { rpc: R('Exec'), what: 'unknown id', req: () => ({ containerId: UNKNOWN_ID, cmd: ['sh'], stdout: true }), codes: [S.NOT_FOUND], field: /container/ },
  { rpc: R('Exec'), what: 'empty cmd', req: (f) => ({ containerId: f.ctr, cmd: [], stdout: true }), codes: [S.INVALID_ARGUMENT], field: /cmd/ },
  { rpc: R('Exec'), what: 'no stream', req: (f) => ({ containerId: f.ctr, cmd: ['sh'] }), codes: [S.INVALID_ARGUMENT], field: /stdin|stdout|stderr/ },
  {
    rpc: R('Exec'),
    what: 'tty with stderr (conflicting)',
    req: (f) => ({ containerId: f.ctr, cmd: ['sh'], tty: true, stdout: true, stderr: true }),
    codes: [S.INVALID_ARGUMENT],
    field: /tty/,
  },
  { rpc: R('Attach'), what: 'empty container_id', req: () => ({ containerId: '', stdout: true }), codes: [S.INVALID_ARGUMENT], field: /container_?id/i },
  { rpc: R('Attach'), what: 'unknown id', req: () => ({ containerId: UNKNOWN_ID, stdout: true }), codes: [S.NOT_FOUND], field: /container/ },
  { rpc: R('Attach'), what: 'no stream', req: (f) => ({ containerId: f.ctr }), codes: [S.INVALID_ARGUMENT], field: /stdin|stdout|stderr/ },
  {
    rpc: R('Attach'),
    what: 'tty with stderr (conflicting)',
    req: (f) => ({ containerId: f.ctr, tty: true, stdout: true, stderr: true }),
    codes: [S.INVALID_ARGUMENT],
    field: /tty/,
  },
  {
    rpc: R('PortForward'),
    what: 'empty pod_sandbox_id',
    req: () => ({ podSandboxId: '', port: [80] }),
    codes: [S.INVALID_ARGUMENT],
    field: /pod_?sandbox_?id/i,
  },
  { rpc: R('PortForward'), what: 'unknown pod', req: () => ({ podSandboxId: UNKNOWN_ID, port: [80] }), codes: [S.NOT_FOUND], field: /sandbox/ },
  { rpc: R('PortForward'), what: 'port -1', req: (f) => ({ podSandboxId: f.pod.id, port: [-1] }), codes: [S.INVALID_ARGUMENT], field: /port/ },
  { rpc: R('PortForward'), what: 'port 70000', req: (f) => ({ podSandboxId: f.pod.id, port: [70000] }), codes: [S.INVALID_ARGUMENT], field: /port/ },
  { rpc: R('ContainerStats'), what: 'empty container_id', req: () => ({ containerId: '' }), codes: [S.INVALID_ARGUMENT], field: /container_?id/i },
  { rpc: R('ContainerStats'), what: 'unknown id', req: () => ({ containerId: UNKNOWN_ID }), codes: [S.NOT_FOUND], field: /container/ },
  { rpc: R('ListContainerStats'), what: 'filter unknown id (empty list)', req: () => ({ filter: { id: UNKNOWN_ID } }), codes: [S.OK] },
  { rpc: R('StreamContainerStats'), what: 'filter unknown pod (empty)', req: () => ({ filter: { podSandboxId: UNKNOWN_ID } }), codes: [S.OK] },
  { rpc: R('PodSandboxStats'), what: 'empty pod_sandbox_id', req: () => ({ podSandboxId: '' }), codes: [S.INVALID_ARGUMENT], field: /pod_?sandbox_?id/i },
  { rpc: R('PodSandboxStats'), what: 'unknown id', req: () => ({ podSandboxId: UNKNOWN_ID }), codes: [S.NOT_FOUND], field: /sandbox/ },
  { rpc: R('ListPodSandboxStats'), what: 'filter unknown id (empty list)', req: () => ({ filter: { id: UNKNOWN_ID } }), codes: [S.OK] },
  { rpc: R('StreamPodSandboxStats'), what: 'filter unknown id (empty)', req: () => ({ filter: { id: UNKNOWN_ID } }), codes: [S.OK] },
  {
    rpc: R('UpdateRuntimeConfig'),
    what: 'pod_cidr not a CIDR',
    req: () => ({ runtimeConfig: { networkConfig: { podCidr: 'not-a-cidr' } } }),
    codes: [S.INVALID_ARGUMENT],
    field: /pod_?cidr/i,
  },
  {
    rpc: R('UpdateRuntimeConfig'),
    what: '1 MiB pod_cidr',
    req: () => ({ runtimeConfig: { networkConfig: { podCidr: MiB } } }),
    codes: [S.INVALID_ARGUMENT],
    field: /pod_?cidr/i,
  },
  { rpc: R('Status'), what: 'verbose (answered)', req: () => ({ verbose: true }), codes: [S.OK] },
  {
    rpc: R('CheckpointContainer'),
    what: 'empty container_id',
    req: () => ({ containerId: '' }),
    codes: [S.INVALID_ARGUMENT, S.UNIMPLEMENTED],
    field: /container_?id|checkpoint/i,
  },
  {
    rpc: R('CheckpointContainer'),
    what: 'unknown id, negative timeout',
    req: () => ({ containerId: UNKNOWN_ID, timeout: -1n }),
    codes: [S.NOT_FOUND, S.INVALID_ARGUMENT, S.UNIMPLEMENTED],
    field: /container|timeout|checkpoint/i,
  },
  { rpc: R('GetContainerEvents'), what: 'empty request (stream opens)', req: () => ({}), codes: [S.OK] },
  { rpc: R('ListMetricDescriptors'), what: 'empty request (answered)', req: () => ({}), codes: [S.OK] },
  { rpc: R('ListPodSandboxMetrics'), what: 'empty request (answered)', req: () => ({}), codes: [S.OK] },
  { rpc: R('StreamPodSandboxMetrics'), what: 'empty request (answered)', req: () => ({}), codes: [S.OK] },
  { rpc: R('RuntimeConfig'), what: 'empty request (answered)', req: () => ({}), codes: [S.OK] },
  {
    rpc: R('UpdatePodSandboxResources'),
    what: 'empty pod_sandbox_id',
    req: () => ({ podSandboxId: '' }),
    codes: [S.INVALID_ARGUMENT],
    field: /pod_?sandbox_?id/i,
  },
  { rpc: R('UpdatePodSandboxResources'), what: 'unknown id', req: () => ({ podSandboxId: UNKNOWN_ID, resources: {} }), codes: [S.NOT_FOUND], field: /sandbox/ },
  {
    rpc: R('UpdatePodSandboxResources'),
    what: 'negative memory_limit_in_bytes',
    req: (f) => ({ podSandboxId: f.pod.id, resources: { memoryLimitInBytes: -3n } }),
    codes: [S.INVALID_ARGUMENT],
    field: /memory/,
  },

  // --- ImageService ---
  {
    rpc: I('ListImages'),
    what: 'filter invalid reference',
    req: () => ({ filter: { image: { image: 'Not a ref::' } } }),
    codes: [S.INVALID_ARGUMENT, S.OK],
    field: /image/,
  },
  {
    rpc: I('StreamImages'),
    what: 'filter invalid reference',
    req: () => ({ filter: { image: { image: 'Not a ref::' } } }),
    codes: [S.INVALID_ARGUMENT, S.OK],
    field: /image/,
  },
  { rpc: I('ImageStatus'), what: 'no image spec', req: () => ({}), codes: [S.INVALID_ARGUMENT], field: /image/ },
  { rpc: I('ImageStatus'), what: 'invalid reference', req: () => ({ image: { image: 'Not a ref::' } }), codes: [S.INVALID_ARGUMENT], field: /image/ },
  { rpc: I('ImageStatus'), what: '1 MiB reference', req: () => ({ image: { image: MiB } }), codes: [S.INVALID_ARGUMENT], field: /image/ },
  { rpc: I('ImageStatus'), what: 'unknown image (answered, no image)', req: () => ({ image: { image: 'localhost:1/absent/image:1' } }), codes: [S.OK] },
  { rpc: I('PullImage'), what: 'no image spec', req: () => ({}), codes: [S.INVALID_ARGUMENT], field: /image/ },
  { rpc: I('PullImage'), what: 'empty reference', req: () => ({ image: { image: '' } }), codes: [S.INVALID_ARGUMENT], field: /image/ },
  { rpc: I('PullImage'), what: 'invalid reference', req: () => ({ image: { image: 'Not a ref::' } }), codes: [S.INVALID_ARGUMENT], field: /image/ },
  {
    rpc: I('PullImage'),
    what: 'malformed digest',
    req: () => ({ image: { image: 'localhost:1/busybox@sha256:zz' } }),
    codes: [S.INVALID_ARGUMENT],
    field: /image|digest/,
  },
  { rpc: I('PullImage'), what: '1 MiB reference', req: () => ({ image: { image: `localhost:1/${MiB}` } }), codes: [S.INVALID_ARGUMENT], field: /image/ },
  { rpc: I('RemoveImage'), what: 'no image spec', req: () => ({}), codes: [S.INVALID_ARGUMENT], field: /image/ },
  { rpc: I('RemoveImage'), what: 'invalid reference', req: () => ({ image: { image: 'Not a ref::' } }), codes: [S.INVALID_ARGUMENT], field: /image/ },
  { rpc: I('RemoveImage'), what: 'unknown image (idempotent)', req: () => ({ image: { image: 'localhost:1/absent/image:1' } }), codes: [S.OK, S.NOT_FOUND] },
  { rpc: I('ImageFsInfo'), what: 'empty request (answered)', req: () => ({}), codes: [S.OK] },
];

let env: CriEnv;
let fx: Fixture;
const counts = new Map<string, number>();

interface World {
  pods: string[];
  ctrs: string[];
  images: string[];
  bundles: string[];
  netns: string[];
  snapshots: number;
}

function ls(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

async function world(): Promise<World> {
  const rt = env.berthd.cri.runtime;
  return {
    pods: (await rt.listPodSandbox({})).items.map((p) => p.id).sort(),
    ctrs: (await rt.listContainers({})).containers.map((c) => c.id).sort(),
    images: (await env.berthd.cri.image.listImages({})).images.map((i) => i.id).sort(),
    bundles: ls(join(env.berthd.state, 'tasks', 'k8s.io')),
    netns: ls(join(env.berthd.state, 'netns')),
    snapshots: ls(join(env.berthd.root, 'snapshots', 'overlayfs', 'snapshots')).length,
  };
}

/** Sends one row; resolves to the status code and message (0 and '' when answered). */
async function send(row: Row): Promise<{ code: number; details: string }> {
  const [svc, name] = row.rpc.split('.') as [string, string];
  const desc = svc === 'RuntimeService' ? RuntimeService : ImageService;
  const m = desc.methods.find((x) => x.name === name)!;
  const client = (svc === 'RuntimeService' ? env.berthd.cri.runtime : env.berthd.cri.image) as Record<string, (...a: unknown[]) => any>;
  const fn = client[m.localName]!;
  const opts = { metadata: row.metadata, timeoutMs: 30_000 };
  try {
    if (m.methodKind === 'server_streaming') {
      const stream = fn(row.req(fx), opts);
      // Endless streams (events): answered once the server sent the headers (it has accepted
      // the call and subscribed); a refused call ends with its status instead.
      void stream.opened.then(
        () => stream.cancel(),
        () => undefined,
      );
      try {
        for await (const _ of stream) void _;
      } catch (err) {
        if ((err as { code?: number }).code !== S.CANCELLED) throw err;
      }
    } else {
      await fn(row.req(fx), opts);
    }
    return { code: S.OK, details: '' };
  } catch (err) {
    const e = err as { code?: number; details?: string; message?: string };
    return { code: e.code ?? -1, details: String(e.details ?? e.message) };
  }
}

before(async () => {
  if (skip) return;
  env = await startCriEnv();
  await env.berthd.cri.image.pullImage({ image: { image: env.busybox.ref } });
  const pod = await runPod(env);
  const ctrCfg = () => busyboxConfig(env, 'bad-input', ['sleep', '600']) as Record<string, any>;
  const ctr = await createContainer(env, pod, ctrCfg() as never);
  fx = {
    pod,
    ctr,
    busybox: env.busybox.ref,
    podCfg: () => ({ ...(pod.config as Record<string, any>), metadata: { name: 'bad-input-pod', namespace: 'default', uid: 'uid-bad-input', attempt: 0 } }),
    ctrCfg: () => ({ ...ctrCfg(), metadata: { name: 'bad-input-row', attempt: 0 } }),
  };
});

after(async () => {
  if (!env) return;
  console.log(`inputs per RPC: ${JSON.stringify(Object.fromEntries(counts))}`);
  await fx?.pod.remove();
  await env.cleanup();
});

test('every RPC of RuntimeService and ImageService has bad-input rows', () => {
  const want = [...RuntimeService.methods.map((m) => R(m.name)), ...ImageService.methods.map((m) => I(m.name))];
  const have = new Set(rows.map((r) => r.rpc));
  const missing = want.filter((w) => !have.has(w));
  assert.deepEqual(missing, [], 'RPCs without rows in the bad-input table');
  const unknown = [...have].filter((h) => !want.includes(h));
  assert.deepEqual(unknown, [], 'rows for RPCs the services do not have');
});

test('each bad input gets a fitting code and a message naming the field; berthd keeps serving, nothing half-made', { skip, timeout: 600_000 }, async () => {
  const before = await world();
  const failures: string[] = [];
  for (const row of rows) {
    counts.set(row.rpc, (counts.get(row.rpc) ?? 0) + 1);
    const got = await send(row);
    const label = `${row.rpc} [${row.what}]: ${grpc.status[got.code] ?? got.code} ${got.details.slice(0, 200)}`;
    if (got.code === S.INTERNAL || got.code === S.UNKNOWN || !row.codes.includes(got.code)) {
      failures.push(`${label} (want ${row.codes.map((c) => grpc.status[c]).join('|')})`);
    } else if (got.code !== S.OK && row.field && !row.field.test(got.details)) {
      failures.push(`${label} (message does not name ${row.field})`);
    } else if (got.details.length > 1100) {
      failures.push(`${label} (message of ${got.details.length} characters)`);
    }
    // Still serving after each row.
    try {
      await env.berthd.cri.runtime.version({ version: 'v1' }, { timeoutMs: 10_000 });
    } catch (err) {
      failures.push(`${label}: Version failed afterwards: ${(err as Error).message}`);
      break;
    }
  }
  assert.deepEqual(failures, [], `bad-input rows failing:\n${failures.join('\n')}`);
  assert.deepEqual(await world(), before, 'nothing half-made: pods, containers, images, bundles, netns, snapshots as before');
  assert.equal(env.berthd.proc.exitCode, null, 'berthd still running');
});
