/**
 * The CLI's streaming client against berth's real StreamingServer (loopback only) over a fake
 * backend: exit codes, stdout/stderr separation, stdin EOF, resize, and port-forward bridging.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { PassThrough, type Duplex } from 'node:stream';
import { StreamingServer } from '../../src/streaming/index.js';
import type { StreamIO, StreamingBackend, TerminalSize } from '../../src/streaming/types.js';
import { exitCodeFromStatus, forwardConnection, RemoteCommandError, runRemoteCommand } from '../../src/cli/stream-client.js';

const resizes: TerminalSize[] = [];

const backend: StreamingBackend = {
  async exec(_id: string, cmd: string[], io: StreamIO) {
    if (cmd[0] === 'echo-stdin') {
      // Echo stdin to stdout until the client closes it: proves the v5 close message arrives.
      for await (const chunk of io.stdin!) io.stdout?.write(chunk);
      io.stdout?.write('<eof>');
      return { exitCode: 0 };
    }
    if (cmd[0] === 'resize') {
      for await (const s of io.resize) {
        resizes.push(s);
        break;
      }
      return { exitCode: 0 };
    }
    io.stdout?.write('out\n');
    io.stderr?.write('err\n');
    return { exitCode: Number(cmd[0]) };
  },
  async attach() {},
  async portForward(_pod: string, port: number, stream: Duplex) {
    // An "uppercase server" on the pod port; answers after the client's request arrives.
    await new Promise<void>((resolve) => {
      stream.on('data', (c: Buffer) => stream.write(`${port}:${c.toString().toUpperCase()}`));
      stream.on('end', () => resolve());
    });
  },
};

let server: StreamingServer;
before(async () => {
  server = new StreamingServer({ address: '127.0.0.1:0', backend, tokenTtlMs: 5000, streamCreationTimeoutMs: 3000 });
  await server.start();
});
after(async () => {
  await server.stop();
});

function sink(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString() };
}

test('exec session: stdout and stderr stay apart and the exit code comes back', async () => {
  const url = server.getExec({ containerId: 'c1', cmd: ['3'], tty: false, stdin: false, stdout: true, stderr: true });
  const out = sink();
  const err = sink();
  const code = await runRemoteCommand(url, { stdout: out.stream, stderr: err.stream });
  assert.equal(code, 3);
  assert.equal(out.text(), 'out\n');
  assert.equal(err.text(), 'err\n');
  const ok = server.getExec({ containerId: 'c1', cmd: ['0'], tty: false, stdin: false, stdout: true, stderr: true });
  assert.equal(await runRemoteCommand(ok, { stdout: sink().stream, stderr: sink().stream }), 0);
});

test('exec session: stdin reaches the command and its end is signalled', async () => {
  const url = server.getExec({ containerId: 'c1', cmd: ['echo-stdin'], tty: false, stdin: true, stdout: true, stderr: false });
  const stdin = new PassThrough();
  const out = sink();
  const done = runRemoteCommand(url, { stdin, stdout: out.stream });
  stdin.write('hello ');
  stdin.end('world');
  assert.equal(await done, 0);
  assert.equal(out.text(), 'hello world<eof>');
});

test('exec session with a terminal sends the initial size', async () => {
  const url = server.getExec({ containerId: 'c1', cmd: ['resize'], tty: true, stdin: false, stdout: true, stderr: false });
  resizes.length = 0;
  assert.equal(await runRemoteCommand(url, { stdout: sink().stream, size: { width: 120, height: 33 } }), 0);
  assert.deepEqual(resizes, [{ width: 120, height: 33 }]);
});

test('a used or unknown URL is a readable error', async () => {
  const url = server.getExec({ containerId: 'c1', cmd: ['0'], tty: false, stdin: false, stdout: true, stderr: true });
  await runRemoteCommand(url, { stdout: sink().stream, stderr: sink().stream });
  await assert.rejects(runRemoteCommand(url, { stdout: sink().stream }), /HTTP 404/);
});

test('port-forward bridges a local connection, also when the client half-closes', async () => {
  const local = net.createServer({ allowHalfOpen: true }, (s) => {
    const url = server.getPortForward({ podSandboxId: 'p1', port: [8080] });
    forwardConnection(url, s, () => {}).catch(() => {});
  });
  await new Promise<void>((r) => local.listen(0, '127.0.0.1', () => r()));
  try {
    const port = (local.address() as net.AddressInfo).port;
    const reply = await new Promise<string>((resolve, reject) => {
      const c = net.connect(port, '127.0.0.1', () => c.end('ping'));
      const chunks: Buffer[] = [];
      c.on('data', (d: Buffer) => chunks.push(d));
      c.on('close', () => resolve(Buffer.concat(chunks).toString()));
      c.on('error', reject);
    });
    assert.equal(reply, '8080:PING');
  } finally {
    await new Promise<void>((r) => local.close(() => r()));
  }
});

test('exit codes come from the status document; other failures are errors', () => {
  assert.equal(exitCodeFromStatus(undefined), 0);
  assert.equal(exitCodeFromStatus(Buffer.from('{"status":"Success"}')), 0);
  assert.equal(
    exitCodeFromStatus(
      Buffer.from(JSON.stringify({ status: 'Failure', reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: '42' }] } })),
    ),
    42,
  );
  assert.throws(
    () => exitCodeFromStatus(Buffer.from(JSON.stringify({ status: 'Failure', reason: 'InternalError', message: 'boom' }))),
    (e: unknown) => e instanceof RemoteCommandError && e.message === 'boom',
  );
  assert.throws(() => exitCodeFromStatus(Buffer.from('plain text failure')), /plain text failure/);
});
