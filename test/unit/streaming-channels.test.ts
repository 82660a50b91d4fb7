import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeChannelMessage, encodeChannelMessage } from '../../src/streaming/websocket.js';
import { negotiate } from '../../src/streaming/protocol.js';
import { ResizeQueue } from '../../src/streaming/resize.js';
import { encodeStatus, exitCodeStatus, internalErrorStatus, successStatus } from '../../src/streaming/status.js';
import { RequestCache } from '../../src/streaming/tokens.js';
import { StreamingServer } from '../../src/streaming/server.js';
import type { StreamingBackend, TerminalSize } from '../../src/streaming/types.js';
import { isBerthError } from '../../src/errors.js';

test('binary channel messages carry the channel in the first byte', () => {
  const m = encodeChannelMessage(2, Buffer.from('err'), false) as Buffer;
  assert.equal(m.toString('hex'), '02' + Buffer.from('err').toString('hex'));
  assert.deepEqual(decodeChannelMessage(m, false), { channel: 2, data: Buffer.from('err') });
  assert.deepEqual(decodeChannelMessage(Buffer.from([255, 0]), false), { channel: 255, data: Buffer.from([0]) });
  assert.equal(decodeChannelMessage(Buffer.alloc(0), false), undefined);
});

test('base64 channel messages are an ASCII digit followed by base64', () => {
  const m = encodeChannelMessage(1, Buffer.from([0, 1, 2, 255]), true);
  assert.equal(m, '1AAEC/w==');
  assert.deepEqual(decodeChannelMessage(Buffer.from('0aGk='), true), { channel: 0, data: Buffer.from('hi') });
  assert.equal(decodeChannelMessage(Buffer.from('xaGk='), true), undefined);
});

test('protocol negotiation takes the first client protocol the server supports', () => {
  const server = ['v4.channel.k8s.io', 'v3.channel.k8s.io', 'channel.k8s.io'];
  assert.equal(negotiate(['v5.channel.k8s.io', 'v3.channel.k8s.io', 'v4.channel.k8s.io'], server), 'v3.channel.k8s.io');
  assert.equal(negotiate(['v5.channel.k8s.io, v4.channel.k8s.io'], server), 'v4.channel.k8s.io');
  assert.equal(negotiate(['nope'], server), undefined);
});

test('resize messages split across chunks are reassembled and garbage is skipped', async () => {
  const q = new ResizeQueue();
  q.write('{"Width":80,');
  q.write('"Height":24}\n{"Width":-1,"Height":5}\nnot json{"Width":120,"Height":40}');
  q.write('{"Width":"x"}');
  q.end();
  const got: TerminalSize[] = [];
  for await (const s of q) got.push(s);
  assert.deepEqual(got, [
    { width: 80, height: 24 },
    { width: 120, height: 40 },
  ]);
});

test('exit status is JSON with NonZeroExitCode for v4+ and plain text for older protocols', () => {
  const v4 = JSON.parse(encodeStatus('v4.channel.k8s.io', exitCodeStatus(7)).toString());
  assert.deepEqual(v4, {
    metadata: {},
    status: 'Failure',
    message: 'command terminated with non-zero exit code: exit status 7',
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: '7' }] },
  });
  assert.deepEqual(JSON.parse(encodeStatus('v5.channel.k8s.io', exitCodeStatus(0)).toString()), { metadata: {}, status: 'Success' });
  assert.equal(encodeStatus('v3.channel.k8s.io', successStatus()).length, 0);
  assert.match(encodeStatus('channel.k8s.io', exitCodeStatus(7)).toString(), /non-zero exit code/);
  assert.equal(JSON.parse(encodeStatus('v4.channel.k8s.io', internalErrorStatus('boom')).toString()).code, 500);
});

test('request tokens are single use, expire, and are capped', () => {
  let now = 1000;
  const cache = new RequestCache(100, 2, () => now);
  const req = { kind: 'portforward' as const, request: { podSandboxId: 'p', port: [] } };
  const a = cache.insert(req);
  assert.match(a, /^[A-Za-z0-9_-]{22}$/);
  assert.deepEqual(cache.consume(a), req);
  assert.equal(cache.consume(a), undefined);
  const b = cache.insert(req);
  cache.insert(req);
  assert.throws(
    () => cache.insert(req),
    (e: unknown) => isBerthError(e, 'ResourceExhausted'),
  );
  now += 100;
  assert.equal(cache.consume(b), undefined);
  cache.insert(req); // expired entries were evicted to make room
});

test('GetExec/GetAttach/GetPortForward validate the request before handing out a URL', async () => {
  const backend = {} as StreamingBackend;
  const server = new StreamingServer({ address: '127.0.0.1:0', backend });
  const invalid = (e: unknown) => isBerthError(e, 'InvalidArgument');
  const base = { containerId: 'c', cmd: ['ls'], tty: false, stdin: false, stdout: true, stderr: false };
  assert.throws(() => server.getExec({ ...base, tty: true, stderr: true }), invalid);
  assert.throws(() => server.getExec({ ...base, stdout: false }), invalid);
  assert.throws(() => server.getExec({ ...base, cmd: [] }), invalid);
  assert.throws(() => server.getExec({ ...base, containerId: '' }), invalid);
  assert.throws(() => server.getAttach({ containerId: 'c', tty: true, stdin: true, stdout: true, stderr: true }), invalid);
  assert.throws(() => server.getPortForward({ podSandboxId: 'p', port: [70000] }), invalid);
  assert.throws(
    () => server.getExec(base),
    (e: unknown) => isBerthError(e, 'FailedPrecondition'),
  );
  await server.start();
  try {
    const url = server.getExec(base);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/exec\/[A-Za-z0-9_-]+$/);
    assert.match(server.getPortForward({ podSandboxId: 'p', port: [80] }), /\/portforward\//);
    assert.match(server.getAttach({ containerId: 'c', tty: false, stdin: true, stdout: true, stderr: true }), /\/attach\//);
  } finally {
    await server.stop();
  }
});
