import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { KeyValueSchema, Signal } from '../../src/api/cri/runtime/v1/api_pb.js';
import { isBerthError } from '../../src/errors.js';
import { containerEnv, mergeEnv, parseSignal, processArgs, stopSignal, workingDir } from '../../src/oci/process.js';
import type { ImageConfig } from '../../src/oci/spec.js';

const image: ImageConfig = { Entrypoint: ['/ep'], Cmd: ['cmd-arg'] };
const kv = (key: string, value: string | Uint8Array) =>
  create(KeyValueSchema, { key, value: typeof value === 'string' ? new TextEncoder().encode(value) : value });

test('Kubernetes command/args table against image Entrypoint/Cmd', () => {
  const cases: Array<[string[], string[], ImageConfig, string[]]> = [
    [[], [], image, ['/ep', 'cmd-arg']],
    [[], ['a1'], image, ['/ep', 'a1']],
    [['/c'], [], image, ['/c']],
    [['/c'], ['a1', 'a2'], image, ['/c', 'a1', 'a2']],
    [[], [], { Cmd: ['/only-cmd'] }, ['/only-cmd']],
    [[], ['x'], { Cmd: ['/only-cmd'] }, ['x']],
    [[], [], { Entrypoint: [''], Cmd: ['/sh'] }, ['/sh']],
    [[], [], { Entrypoint: null, Cmd: null, WorkingDir: '/' }, []],
  ];
  for (const [cmd, args, img, want] of cases) {
    if (want.length === 0) {
      assert.throws(
        () => processArgs(cmd, args, img, 'f'),
        (e) => isBerthError(e, 'InvalidArgument') && /no command/.test(e.message),
      );
    } else {
      assert.deepEqual(processArgs(cmd, args, img, 'f'), want, JSON.stringify([cmd, args, img]));
    }
  }
});

test('processArgs never aliases the image arrays', () => {
  const img: ImageConfig = { Entrypoint: ['/ep'], Cmd: ['x'] };
  const out = processArgs([], [], img, 'f');
  out.push('mutated');
  assert.deepEqual(img.Entrypoint, ['/ep']);
  assert.deepEqual(img.Cmd, ['x']);
});

test('env: image env then config env, later wins by key, position kept', () => {
  const env = containerEnv({ Env: ['PATH=/img/bin', 'A=image', 'B=image'] }, [kv('A', 'config'), kv('C', 'new')], 'pod-host', 'f');
  assert.deepEqual(env, ['PATH=/img/bin', 'HOSTNAME=pod-host', 'A=config', 'B=image', 'C=new']);
});

test('env: default PATH when the image has none; an override without = removes the key', () => {
  assert.deepEqual(containerEnv({}, [], 'h', 'f'), ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOSTNAME=h']);
  assert.deepEqual(mergeEnv(['A=1', 'B=2'], ['A']), ['B=2']);
});

test('env: each container gets its own array; the image config is never changed', () => {
  const img: ImageConfig = { Env: ['SHARED=1'] };
  const one = containerEnv(img, [kv('SECRET', 'pod-a')], 'a', 'f');
  const two = containerEnv(img, [], 'b', 'f');
  assert.notEqual(one, two);
  assert.ok(!two.some((e) => e.startsWith('SECRET=')));
  assert.deepEqual(img.Env, ['SHARED=1']);
});

test('env: invalid names are rejected naming the field', () => {
  for (const key of ['', 'A=B', 'A\0']) {
    assert.throws(
      () => containerEnv({}, [kv(key, 'v')], 'h', 'container config: envs'),
      (e) => isBerthError(e, 'InvalidArgument') && e.message.includes('container config: envs[0]'),
      key,
    );
  }
  assert.throws(
    () => containerEnv({ Env: ['=x'] }, [], 'h', 'f'),
    (e) => isBerthError(e, 'InvalidArgument') && /image config Env\[0\]/.test(e.message),
  );
});

test('working dir: config, else image, else /; relative paths rejected', () => {
  assert.equal(workingDir('/w', { WorkingDir: '/img' }, 'f'), '/w');
  assert.equal(workingDir('', { WorkingDir: '/img/../x/' }, 'f'), '/x');
  assert.equal(workingDir('', {}, 'f'), '/');
  assert.throws(
    () => workingDir('rel', {}, 'container config: working_dir'),
    (e) => isBerthError(e, 'InvalidArgument') && /working_dir/.test(e.message),
  );
});

test('stop signal: config, else image StopSignal, else SIGTERM', () => {
  assert.equal(stopSignal(Signal.RUNTIME_DEFAULT, {}), 15);
  assert.equal(stopSignal(Signal.RUNTIME_DEFAULT, { StopSignal: 'SIGQUIT' }), 3);
  assert.equal(stopSignal(Signal.RUNTIME_DEFAULT, { StopSignal: '9' }), 9);
  assert.equal(stopSignal(Signal.SIGUSR1, { StopSignal: 'SIGQUIT' }), 10);
  assert.equal(stopSignal(Signal.SIGRTMINPLUS3, {}), 37);
  assert.equal(stopSignal(Signal.SIGRTMAXMINUS1, {}), 63);
  assert.equal(parseSignal('term'), 15);
  assert.equal(parseSignal('SIGBOGUS'), undefined);
  assert.throws(
    () => stopSignal(Signal.RUNTIME_DEFAULT, { StopSignal: 'NOPE' }),
    (e) => isBerthError(e, 'InvalidArgument'),
  );
});
