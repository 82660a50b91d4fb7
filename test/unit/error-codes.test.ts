// The error-code catalogue (src/error-codes.ts) against the source, and a code's trip to the
// client: BerthError → ttrpc status (berth-shim → berthd) and BerthError → gRPC status (berthd →
// CRI client, with ErrorInfo details, the berth-error-code trailer and the log line).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRegistry, fromBinary } from '@bufbuild/protobuf';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import { ErrorInfoSchema } from '../../src/api/google/rpc/error_details_pb.js';
import { StatusSchema } from '../../src/api/ttrpc/ttrpc_pb.js';
import { ERROR_CODE_TRAILER, ERROR_CODES, ERROR_DOMAIN, isErrorCode, kindOf, type ErrorCode } from '../../src/error-codes.js';
import { BerthError, StatusCode, berthError, errors, fromStatus, hasCode, isBerthError, toBerthError, type ErrorKind } from '../../src/errors.js';
import type { Logger } from '../../src/log.js';
import { TtrpcClient, TtrpcServer } from '../../src/ttrpc/index.js';
import { encode } from '../../src/ttrpc/pb.js';
import { google } from '../../src/api/shim_lean.js';
import { codeFromDetails, decodeRpcStatus, encodeRpcStatus, errorInfoDetails } from '../../src/ttrpc/status-details.js';
import { startCriServer } from '../../src/cri/server/server.js';
import { connectCri } from '../../src/cri/server/client.js';
import { STATUS_DETAILS_TRAILER } from '../../src/cri/server/instrument.js';
import { describeError } from '../../src/cli/common.js';

// dist/test/unit → repository root (the tests run from the compiled tree; the source is read).
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SRC = join(ROOT, 'src');

const KINDS = new Set(Object.keys(StatusCode).filter((k) => k !== 'OK' && k !== 'Unknown'));
const FACTORY_KIND: Record<string, ErrorKind> = {
  invalidArgument: 'InvalidArgument',
  notFound: 'NotFound',
  alreadyExists: 'AlreadyExists',
  failedPrecondition: 'FailedPrecondition',
  unavailable: 'Unavailable',
  deadlineExceeded: 'DeadlineExceeded',
  internal: 'Internal',
  unimplemented: 'Unimplemented',
  unauthenticated: 'Unauthenticated',
  permissionDenied: 'PermissionDenied',
  resourceExhausted: 'ResourceExhausted',
  canceled: 'Canceled',
};

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (p !== join(SRC, 'api')) out.push(...sourceFiles(p));
    } else if (e.name.endsWith('.ts')) {
      out.push(p);
    }
  }
  return out;
}

interface Use {
  code: string;
  /** The kind the site throws it with, when the site names one. */
  kind?: ErrorKind;
  where: string;
}

/** Every place in src/ that names a code where an error is made or tested. */
function codeUses(): Use[] {
  const uses: Use[] = [];
  const lineOf = (text: string, at: number): number => text.slice(0, at).split('\n').length;
  for (const file of sourceFiles(SRC)) {
    if (file.endsWith('error-codes.ts')) continue;
    const text = readFileSync(file, 'utf8');
    const where = (at: number): string => `${relative(ROOT, file)}:${lineOf(text, at)}`;
    for (const m of text.matchAll(/errors\.([a-zA-Z]+)\(\s*(['"`])([^'"`]*)\2/g)) {
      uses.push({ code: m[3]!, kind: FACTORY_KIND[m[1]!], where: where(m.index) });
    }
    for (const m of text.matchAll(/new (?:BerthError|CniPluginError)\(\s*'([A-Za-z]+)',\s*(['"`])([^'"`]*)\2/g)) {
      uses.push({ code: m[3]!, kind: m[1] as ErrorKind, where: where(m.index) });
    }
    // Helpers that take a code: berthError, hasCode, CDI's fail, oci's invalid, runChecked, …
    for (const m of text.matchAll(/\b(?:loadLocalhostSeccomp|this\.ctx)\([^;]*?,\s*'([a-z][a-z0-9_]*\.[a-z0-9_]+)'\s*(?:,\s*[\w.]+\s*)?\)/g)) {
      uses.push({ code: m[1]!, where: where(m.index) });
    }
    for (const m of text.matchAll(/\b(?:berthError|hasCode|fail|invalid|runChecked|CniPluginError)\([^;]*?(['"`])([a-z][a-z0-9_]*\.[a-z0-9_.${}]+)\1/g)) {
      if (/^[a-z0-9_]+\.(json|sock|ts|js|log)$/.test(m[2]!)) continue;
      uses.push({ code: m[2]!, where: where(m.index) });
    }
  }
  return uses;
}

test('the table: well-formed names, known kinds, one-line meanings, sorted without duplicates', () => {
  const source = readFileSync(join(SRC, 'error-codes.ts'), 'utf8');
  const keys = [...source.matchAll(/^ {2}'([^']+)': \{ kind: /gm)].map((m) => m[1]!);
  assert.equal(keys.length, Object.keys(ERROR_CODES).length, 'every table line is parsed, and every entry is one line');
  assert.deepEqual(
    keys.filter((k, i) => keys.indexOf(k) !== i),
    [],
    'no code listed twice',
  );
  assert.deepEqual(keys, [...keys].sort(), 'codes sorted');
  for (const [code, info] of Object.entries(ERROR_CODES)) {
    assert.match(code, /^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$/, `${code}: <area>.<what>, lower snake case`);
    assert.ok(KINDS.has(info.kind), `${code}: kind ${info.kind}`);
    assert.ok(info.meaning.length >= 10 && info.meaning.length <= 140 && !/\n/.test(info.meaning), `${code}: meaning "${info.meaning}"`);
    assert.ok(isErrorCode(code));
    assert.equal(kindOf(code as ErrorCode), info.kind);
  }
  assert.equal(isErrorCode('no.such_code'), false);
  assert.equal(isErrorCode('toString'), false, 'inherited properties are not codes');
});

test('every code the source throws or tests is in the table, with the kind the table gives it', () => {
  const uses = codeUses();
  assert.ok(uses.length > 300, `the scan finds the throw sites (${uses.length})`);
  const problems: string[] = [];
  for (const u of uses) {
    if (u.code.includes('${')) problems.push(`${u.where}: code built at run time (${u.code}); name each code literally`);
    else if (!isErrorCode(u.code)) problems.push(`${u.where}: ${u.code} is not in src/error-codes.ts`);
    else if (u.kind !== undefined && kindOf(u.code) !== u.kind) problems.push(`${u.where}: ${u.code} thrown as ${u.kind}, the table says ${kindOf(u.code)}`);
  }
  assert.deepEqual(problems, []);
});

test('every code in the table is used somewhere in the source', () => {
  const text = sourceFiles(SRC)
    .filter((f) => !f.endsWith('error-codes.ts'))
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n');
  const unused = Object.keys(ERROR_CODES).filter((c) => !text.includes(`'${c}'`));
  assert.deepEqual(unused, [], 'codes nobody throws (remove them or throw them)');
});

test('errors: factories, berthError, hasCode, wrap and toBerthError keep kind and code', () => {
  const e = errors.notFound('sandbox.not_found', 'pod sandbox x not found');
  assert.equal(e.kind, 'NotFound');
  assert.equal(e.code, 'sandbox.not_found');
  assert.equal(e.status, 5);
  assert.ok(hasCode(e, 'sandbox.not_found'));
  assert.ok(!hasCode(e, 'container.not_found'));
  assert.ok(!hasCode(new Error('x'), 'sandbox.not_found'));
  assert.ok(!hasCode(undefined, 'sandbox.not_found'));
  const w = e.wrap('StopPodSandbox');
  assert.equal(w.message, 'StopPodSandbox: pod sandbox x not found');
  assert.equal(w.code, 'sandbox.not_found');
  assert.equal(w.kind, 'NotFound');
  assert.equal(w.cause, e);
  assert.equal(berthError('runc.wrong_state', 'm').kind, 'FailedPrecondition');
  assert.equal(toBerthError(new TypeError('kaput')).code, 'internal.unexpected');
  assert.equal(toBerthError('kaput').kind, 'Internal');
});

test('toBerthError: a full disk is ResourceExhausted storage.no_space, from fs errno and from SQLite', () => {
  const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  const edquot = Object.assign(new Error('EDQUOT: disk quota exceeded, write'), { code: 'EDQUOT' });
  // What better-sqlite3 throws (SqliteError) when a write to the database or its WAL finds the disk full.
  const sqliteFull = Object.assign(new Error('database or disk is full'), { name: 'SqliteError', code: 'SQLITE_FULL' });
  const shm = Object.assign(new Error('disk I/O error'), { name: 'SqliteError', code: 'SQLITE_IOERR_SHMSIZE' });
  for (const err of [enospc, edquot, sqliteFull, shm]) {
    const b = toBerthError(err);
    assert.equal(b.kind, 'ResourceExhausted', err.message);
    assert.equal(b.code, 'storage.no_space');
    assert.match(b.message, /^no space left on device \((ENOSPC|EDQUOT|SQLITE_FULL|SQLITE_IOERR_SHMSIZE)\): /);
    assert.equal(b.cause, err);
  }
  const busy = Object.assign(new Error('database is locked'), { name: 'SqliteError', code: 'SQLITE_BUSY' });
  assert.equal(toBerthError(busy).code, 'internal.unexpected', 'other SQLite errors stay Internal');
});

test('fromStatus keeps a known code of the same kind, else names the status', () => {
  assert.equal(fromStatus(6, 'm', 'shim.container_exists').code, 'shim.container_exists');
  // Unknown to this build (a newer peer), of another kind, or absent: the status's own code.
  assert.equal(fromStatus(6, 'm', 'shim.from_the_future').code, 'status.already_exists');
  assert.equal(fromStatus(5, 'm', 'shim.container_exists').code, 'status.not_found');
  assert.equal(fromStatus(9, 'm').code, 'status.failed_precondition');
  assert.equal(fromStatus(2, 'm').code, 'status.internal', 'UNKNOWN becomes Internal');
  for (const k of KINDS) {
    const e = fromStatus(StatusCode[k as ErrorKind], 'm');
    assert.equal(e.kind, k);
    assert.ok(e.code.startsWith('status.'), e.code);
  }
});

test('status details: an ErrorInfo the protobuf-es descriptors read back, and junk is ignored', () => {
  const bytes = encodeRpcStatus(9, 'container c is not running', 'container.not_running');
  const st = fromBinary(StatusSchema, bytes);
  assert.equal(st.code, 9);
  assert.equal(st.message, 'container c is not running');
  assert.equal(st.details.length, 1);
  assert.equal(st.details[0]!.typeUrl, 'type.googleapis.com/google.rpc.ErrorInfo');
  const info = anyUnpack(st.details[0]!, createRegistry(ErrorInfoSchema)) as { $typeName: string; reason: string; domain: string } | undefined;
  assert.equal(info?.$typeName, 'google.rpc.ErrorInfo');
  assert.equal(info?.reason, 'container.not_running');
  assert.equal(info?.domain, ERROR_DOMAIN);
  assert.equal(codeFromDetails(decodeRpcStatus(bytes).details), 'container.not_running');

  assert.equal(codeFromDetails(undefined), undefined);
  assert.equal(codeFromDetails([{ typeUrl: 'type.googleapis.com/google.rpc.ErrorInfo', value: Uint8Array.from([0x0a, 0x7f]) }]), undefined, 'truncated');
  assert.equal(codeFromDetails([{ typeUrl: 'type.googleapis.com/google.rpc.RetryInfo', value: new Uint8Array() }]), undefined, 'other detail');
  const foreign = {
    typeUrl: 'type.googleapis.com/google.rpc.ErrorInfo',
    value: encode(google.rpc.ErrorInfoS, { reason: 'RATE_LIMITED', domain: 'googleapis.com', metadata: {} }),
  };
  assert.equal(codeFromDetails([foreign]), undefined, 'another domain');
  assert.equal(codeFromDetails([foreign, ...errorInfoDetails('sandbox.not_found')]), 'sandbox.not_found', 'ours among others');
});

async function tempDir(t: TestContext, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('ttrpc: a BerthError keeps its code from server to client (berth-shim → berthd)', async (t) => {
  const server = new TtrpcServer();
  server.register('containerd.task.v2.Task', {
    Create: () => {
      throw errors.alreadyExists('shim.container_exists', 'container c1 already exists');
    },
    Kill: () => {
      throw new TypeError('kaput');
    },
  });
  const path = join(await tempDir(t, 'berth-codes-ttrpc-'), 's.sock');
  await server.listen(path);
  t.after(() => server.shutdown());
  const c = await TtrpcClient.connect(path);
  t.after(() => c.close());
  await assert.rejects(c.call('containerd.task.v2.Task', 'Create', new Uint8Array()), (e: unknown) => {
    assert.ok(isBerthError(e, 'AlreadyExists'));
    assert.equal(e.code, 'shim.container_exists');
    assert.equal(e.message, 'container c1 already exists');
    assert.ok(hasCode(e, 'shim.container_exists'), 'the task manager’s check now matches');
    return true;
  });
  await assert.rejects(c.call('containerd.task.v2.Task', 'Kill', new Uint8Array()), (e: unknown) => {
    assert.ok(isBerthError(e, 'Internal'));
    assert.equal(e.code, 'internal.unexpected');
    return true;
  });
  await assert.rejects(c.call('containerd.task.v2.Task', 'Nope', new Uint8Array()), (e: unknown) => {
    assert.ok(isBerthError(e, 'Unimplemented'));
    assert.equal(e.code, 'status.unimplemented', 'protocol-level statuses carry no berth code');
    return true;
  });
});

function recordingLogger(lines: Array<{ msg: string; fields: Record<string, unknown> }>): Logger {
  const l: Logger = {
    debug: () => undefined,
    info: (msg, fields = {}) => lines.push({ msg, fields }),
    warn: (msg, fields = {}) => lines.push({ msg, fields }),
    error: (msg, fields = {}) => lines.push({ msg, fields }),
    child: () => l,
  };
  return l;
}

test('gRPC: the code reaches the CRI client in ErrorInfo details and the trailer, message unchanged, and is logged', async (t) => {
  const lines: Array<{ msg: string; fields: Record<string, unknown> }> = [];
  const socket = join(await tempDir(t, 'berth-codes-grpc-'), 'cri.sock');
  const long = 'x'.repeat(5000);
  const server = await startCriServer({
    socket,
    runtime: {
      podSandboxStatus: async () => {
        throw errors.notFound('sandbox.not_found', 'pod sandbox abc not found');
      },
      status: async () => {
        throw new Error(long);
      },
      streamPodSandboxes: async () => {
        throw errors.failedPrecondition('sandbox.not_ready', 'pod sandbox abc is not ready');
      },
    },
    image: {},
    berth: {},
    log: recordingLogger(lines),
  });
  t.after(() => server.close(100));
  const cri = connectCri(socket);
  t.after(() => cri.close());

  const err = await cri.runtime.podSandboxStatus({ podSandboxId: 'abc' }).then(
    () => assert.fail('resolved'),
    (e: unknown) => e as { code: number; details: string; metadata: { get(k: string): unknown[] } },
  );
  assert.equal(err.code, 5);
  assert.equal(err.details, 'pod sandbox abc not found', 'the message users see is unchanged');
  assert.deepEqual(err.metadata.get(ERROR_CODE_TRAILER), ['sandbox.not_found']);
  const raw = err.metadata.get(STATUS_DETAILS_TRAILER)[0];
  assert.ok(Buffer.isBuffer(raw), 'grpc-status-details-bin is sent');
  const st = fromBinary(StatusSchema, raw);
  assert.equal(st.code, 5);
  assert.equal(st.message, 'pod sandbox abc not found');
  const info = anyUnpack(st.details[0]!, createRegistry(ErrorInfoSchema)) as { reason: string; domain: string } | undefined;
  assert.equal(info?.reason, 'sandbox.not_found');
  assert.equal(info?.domain, 'berth.io');
  assert.equal(describeError(err), 'NotFound: pod sandbox abc not found [sandbox.not_found]', 'the CLI prints the code');
  const logged = lines.find((l) => l.msg === 'rpc failed' && l.fields['method'] === 'runtime.v1.RuntimeService/PodSandboxStatus');
  assert.equal(logged?.fields['error_code'], 'sandbox.not_found');

  // An unclassified error: Internal, its code, the capped message in both places.
  const internal = await cri.runtime.status({}).then(
    () => assert.fail('resolved'),
    (e: unknown) => e as { code: number; details: string; metadata: { get(k: string): unknown[] } },
  );
  assert.equal(internal.code, 13);
  assert.ok(internal.details.length <= 1024);
  assert.deepEqual(internal.metadata.get(ERROR_CODE_TRAILER), ['internal.unexpected']);
  assert.equal(fromBinary(StatusSchema, internal.metadata.get(STATUS_DETAILS_TRAILER)[0] as Buffer).message, internal.details);

  // A server stream fails the same way.
  const streamErr = await (async () => {
    for await (const _ of cri.runtime.streamPodSandboxes({})) assert.fail('no page expected');
  })().then(
    () => assert.fail('resolved'),
    (e: unknown) => e as { code: number; details: string; metadata: { get(k: string): unknown[] } },
  );
  assert.equal(streamErr.code, 9);
  assert.deepEqual(streamErr.metadata.get(ERROR_CODE_TRAILER), ['sandbox.not_ready']);
  assert.equal(lines.find((l) => l.msg === 'rpc stream failed')?.fields['error_code'], 'sandbox.not_ready');

  // Not every RPC is implemented: that, too, has its code.
  const unimpl = await cri.runtime.checkpointContainer({}).then(
    () => undefined,
    (e: unknown) => e as { code: number; metadata: { get(k: string): unknown[] } },
  );
  assert.equal(unimpl?.code, 12);
  assert.deepEqual(unimpl?.metadata.get(ERROR_CODE_TRAILER), ['rpc.unimplemented']);
});

test('BerthError is what it was: an Error with kind, code, status and cause', () => {
  const cause = new Error('root');
  const e = errors.internal('runc.failed', 'runc start: boom', cause);
  assert.ok(e instanceof Error && e instanceof BerthError);
  assert.equal(e.name, 'BerthError');
  assert.equal(e.cause, cause);
});
