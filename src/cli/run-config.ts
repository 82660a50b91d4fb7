/**
 * `berth run --name NAME [flags] IMAGE [CMD ARGS...]`: builds the pod sandbox config and the
 * container config from flags (pure, so it is unit-tested without a daemon).
 */
import { randomUUID } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import {
  ContainerConfigSchema,
  NamespaceMode,
  PodSandboxConfigSchema,
  PortMappingSchema,
  Protocol,
  type ContainerConfig,
  type PodSandboxConfig,
  type PortMapping,
} from '../api/cri/runtime/v1/api_pb.js';
import { UsageError } from './common.js';

export interface RunOptions {
  name: string;
  namespace: string;
  image: string;
  /** Positional CMD ARGS: replace the image's Cmd (kept Entrypoint), as `docker run`. */
  args: string[];
  /** --entrypoint: replaces the image's Entrypoint. */
  entrypoint?: string;
  ports: string[];
  env: string[];
  labels: Record<string, string>;
  hostNetwork: boolean;
  tty: boolean;
  stdin: boolean;
  workdir?: string;
  /** Pod log directory; defaults to the kubelet's layout under /var/log/pods. */
  logDir?: string;
  /** Pod uid; random when absent. */
  uid?: string;
  runtimeHandler?: string;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** `HOST:CONTAINER[/PROTO]` or `IP:HOST:CONTAINER[/PROTO]` → a CRI port mapping. */
export function parsePortFlag(spec: string): PortMapping {
  const [addr, proto = 'tcp'] = spec.split('/') as [string, string?];
  const protocol = { tcp: Protocol.TCP, udp: Protocol.UDP, sctp: Protocol.SCTP }[proto.toLowerCase()];
  if (protocol === undefined) throw new UsageError(`--port ${spec}: unknown protocol ${JSON.stringify(proto)} (tcp, udp, sctp)`);
  // The host IP may itself be IPv6 in brackets: [::1]:8080:80.
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(\d+):(\d+)$/.exec(addr);
  if (!m) throw new UsageError(`--port ${spec}: expected HOST_PORT:CONTAINER_PORT[/tcp|udp], optionally prefixed with IP:`);
  const hostPort = Number(m[2]);
  const containerPort = Number(m[3]);
  for (const [p, what] of [
    [hostPort, 'host port'],
    [containerPort, 'container port'],
  ] as const) {
    if (p < 1 || p > 65535) throw new UsageError(`--port ${spec}: ${what} ${p} is out of range 1-65535`);
  }
  return create(PortMappingSchema, { protocol, hostPort, containerPort, hostIp: m[1]?.replace(/^\[|\]$/g, '') ?? '' });
}

export function parseEnvFlag(kv: string): { key: string; value: string } {
  const eq = kv.indexOf('=');
  if (eq === 0) throw new UsageError(`--env ${JSON.stringify(kv)}: the name is empty`);
  // `--env NAME` alone takes the value from berth's own environment, as docker does.
  if (eq < 0) return { key: kv, value: process.env[kv] ?? '' };
  return { key: kv.slice(0, eq), value: kv.slice(eq + 1) };
}

export function buildRunConfigs(o: RunOptions): { pod: PodSandboxConfig; container: ContainerConfig } {
  if (!DNS_LABEL.test(o.name))
    throw new UsageError(`--name ${JSON.stringify(o.name)}: must be a DNS label (lowercase letters, digits, '-', at most 63 characters)`);
  if (!DNS_LABEL.test(o.namespace)) throw new UsageError(`--namespace ${JSON.stringify(o.namespace)}: must be a DNS label`);
  if (!o.image) throw new UsageError('run needs an IMAGE');
  const uid = o.uid ?? randomUUID();
  const portMappings = o.ports.map(parsePortFlag);
  const pod = create(PodSandboxConfigSchema, {
    metadata: { name: o.name, namespace: o.namespace, uid, attempt: 0 },
    hostname: o.hostNetwork ? '' : o.name,
    logDirectory: o.logDir ?? `/var/log/pods/${o.namespace}_${o.name}_${uid}`,
    portMappings,
    labels: { ...o.labels, 'io.berth.run': 'true' },
    linux: {
      securityContext: {
        namespaceOptions: { network: o.hostNetwork ? NamespaceMode.NODE : NamespaceMode.POD, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD },
      },
    },
  });
  const container = create(ContainerConfigSchema, {
    metadata: { name: o.name, attempt: 0 },
    image: { image: o.image },
    command: o.entrypoint !== undefined ? [o.entrypoint] : [],
    args: o.args,
    workingDir: o.workdir ?? '',
    envs: o.env.map(parseEnvFlag).map((e) => ({ key: e.key, value: new TextEncoder().encode(e.value) })),
    labels: { ...o.labels },
    logPath: `${o.name}/0.log`,
    tty: o.tty,
    stdin: o.stdin,
    // Interactive runs get one attach session, as `docker run -i` would.
    stdinOnce: o.stdin,
    linux: {},
  });
  return { pod, container };
}
