import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toJson as pbToJson } from '@bufbuild/protobuf';
import { ContainerConfigSchema, NamespaceMode, PodSandboxConfigSchema, Protocol } from '../../src/api/cri/runtime/v1/api_pb.js';
import { buildRunConfigs, parsePortFlag, type RunOptions } from '../../src/cli/run-config.js';
import { UsageError } from '../../src/cli/common.js';
import { containerConfigFromText, podConfigFromText, ConfigFileError } from '../../src/cli/config-file.js';

const opts = (o: Partial<RunOptions> = {}): RunOptions => ({
  name: 'web',
  namespace: 'default',
  image: 'busybox:1',
  args: [],
  ports: [],
  env: [],
  labels: {},
  hostNetwork: false,
  tty: false,
  stdin: false,
  uid: 'u1',
  ...o,
});

test('run flags build a pod and a container config', () => {
  const { pod, container } = buildRunConfigs(
    opts({ args: ['sh', '-c', 'echo hi'], env: ['A=1', 'B=x=y'], ports: ['8080:80', '127.0.0.1:5353:53/udp'], labels: { app: 'w' } }),
  );
  assert.deepEqual({ ...pod.metadata, $typeName: undefined }, { $typeName: undefined, name: 'web', namespace: 'default', uid: 'u1', attempt: 0 });
  assert.equal(pod.logDirectory, '/var/log/pods/default_web_u1');
  assert.equal(pod.hostname, 'web');
  assert.equal(pod.labels.app, 'w');
  assert.equal(pod.linux?.securityContext?.namespaceOptions?.network, NamespaceMode.POD);
  assert.deepEqual(
    pod.portMappings.map((p) => [p.protocol, p.hostIp, p.hostPort, p.containerPort]),
    [
      [Protocol.TCP, '', 8080, 80],
      [Protocol.UDP, '127.0.0.1', 5353, 53],
    ],
  );
  assert.equal(container.metadata?.name, 'web');
  assert.equal(container.image?.image, 'busybox:1');
  assert.deepEqual(container.command, []);
  assert.deepEqual(container.args, ['sh', '-c', 'echo hi']);
  assert.deepEqual(
    container.envs.map((e) => [e.key, new TextDecoder().decode(e.value)]),
    [
      ['A', '1'],
      ['B', 'x=y'],
    ],
  );
  assert.equal(container.logPath, 'web/0.log');
  assert.equal(container.labels.app, 'w');
});

test('--host-network, --entrypoint, -i -t and --log-dir map onto the configs', () => {
  const { pod, container } = buildRunConfigs(
    opts({ hostNetwork: true, entrypoint: '/bin/sh', args: ['-c', 'x'], tty: true, stdin: true, logDir: '/tmp/logs' }),
  );
  assert.equal(pod.linux?.securityContext?.namespaceOptions?.network, NamespaceMode.NODE);
  assert.equal(pod.hostname, '');
  assert.equal(pod.logDirectory, '/tmp/logs');
  assert.deepEqual(container.command, ['/bin/sh']);
  assert.deepEqual(container.args, ['-c', 'x']);
  assert.equal(container.tty, true);
  assert.equal(container.stdin, true);
  assert.equal(container.stdinOnce, true);
});

test('bad names, ports and env are usage errors naming the flag', () => {
  assert.throws(
    () => buildRunConfigs(opts({ name: 'Web_1' })),
    (e: unknown) => e instanceof UsageError && /--name/.test(e.message),
  );
  assert.throws(() => buildRunConfigs(opts({ namespace: '' })), /--namespace/);
  assert.throws(() => parsePortFlag('80'), /--port 80/);
  assert.throws(() => parsePortFlag('0:80'), /host port 0 is out of range/);
  assert.throws(() => parsePortFlag('80:70000'), /container port 70000/);
  assert.throws(() => parsePortFlag('80:80/icmp'), /unknown protocol/);
  assert.throws(() => buildRunConfigs(opts({ env: ['=x'] })), /--env/);
});

test('each run gets a fresh pod uid', () => {
  const a = buildRunConfigs(opts({ uid: undefined })).pod.metadata?.uid;
  const b = buildRunConfigs(opts({ uid: undefined })).pod.metadata?.uid;
  assert.ok(a && b && a !== b);
});

test('built configs survive a protobuf JSON round trip (what a config file would hold)', () => {
  const { pod, container } = buildRunConfigs(opts({ ports: ['1:2'] }));
  const p2 = podConfigFromText(JSON.stringify(pbToJson(PodSandboxConfigSchema, pod)), 'pod.json');
  const c2 = containerConfigFromText(JSON.stringify(pbToJson(ContainerConfigSchema, container)), 'c.json');
  assert.equal(p2.portMappings[0]?.hostPort, 1);
  assert.equal(c2.logPath, 'web/0.log');
});

test('config files: YAML and JSON, snake_case or camelCase names', () => {
  const yaml =
    'metadata:\n  name: nginx-sandbox\n  namespace: default\n  uid: hdishd83djaidwnduwk28bcsb\n  attempt: 1\nlog_directory: /tmp\nlinux:\n  security_context:\n    namespace_options:\n      network: NODE\n';
  const pod = podConfigFromText(yaml, 'pod.yaml');
  assert.equal(pod.metadata?.name, 'nginx-sandbox');
  assert.equal(pod.metadata?.attempt, 1);
  assert.equal(pod.logDirectory, '/tmp');
  assert.equal(pod.linux?.securityContext?.namespaceOptions?.network, NamespaceMode.NODE);
  const c = containerConfigFromText(
    '{"metadata":{"name":"b"},"image":{"image":"busybox"},"command":["top"],"logPath":"b.log","envs":[{"key":"A","value":"1"}]}',
    'c.json',
  );
  assert.deepEqual(c.command, ['top']);
  assert.equal(new TextDecoder().decode(c.envs[0]?.value), '1');
});

test('a typo in a config file is an error naming the file and the field', () => {
  assert.throws(
    () => podConfigFromText('metdata:\n  name: x\n', 'pod.yaml'),
    (e: unknown) => e instanceof ConfigFileError && /pod\.yaml/.test(e.message) && /metdata/.test(e.message),
  );
  assert.throws(
    () => containerConfigFromText('{"image": {"image": 5}}', 'c.json'),
    (e: unknown) => e instanceof ConfigFileError && /c\.json/.test(e.message),
  );
  assert.throws(() => podConfigFromText('- a\n- b\n', 'list.yaml'), /expected an object/);
  assert.throws(() => podConfigFromText('{bad', 'bad.json'), /not valid YAML or JSON/);
});
