import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { followLog, formatLogLine, lastLines, readLog } from '../../src/cli/crilog.js';
import type { LogLine } from '../../src/cri-log.js';

const T = '2024-05-01T10:00:00.123456789Z';

test('tail keeps the last N lines; timestamps prefix the time', () => {
  const lines: LogLine[] = ['a', 'b', 'c'].map((text) => ({ time: T, stream: 'stdout', text }));
  assert.deepEqual(
    lastLines(lines, 2).map((l) => l.text),
    ['b', 'c'],
  );
  assert.deepEqual(lastLines(lines, 0), []);
  assert.equal(lastLines(lines, undefined).length, 3);
  assert.equal(formatLogLine(lines[0]!, true), `${T} a`);
  assert.equal(formatLogLine(lines[0]!, false), 'a');
});

test('following a log continues across rotation and stops when told', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-cli-log-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, '0.log');
  writeFileSync(path, `${T} stdout F one\n`);
  const first = readLog(path);
  assert.deepEqual(
    first.lines.map((l) => l.text),
    ['one'],
  );
  const seen: string[] = [];
  let stop = false;
  const done = followLog(path, first.size, { onLine: (l) => seen.push(l.text), shouldStop: () => stop, pollMs: 20 }, first.asm);
  const waitFor = async (n: number) => {
    for (let i = 0; i < 200 && seen.length < n; i++) await new Promise((r) => setTimeout(r, 10));
  };
  // A partial record, then a record caught half-written by the reader.
  appendFileSync(path, `${T} stdout F two\n${T} stdout P thr\n${T} stdout F e`);
  await waitFor(1);
  appendFileSync(path, `e\n`);
  await waitFor(2);
  // Rotation: the old file is renamed, the writer reopens a new one.
  appendFileSync(path, `${T} stdout F before-rotate\n`);
  renameSync(path, `${path}.1`);
  writeFileSync(path, `${T} stdout F after-rotate\n`);
  await waitFor(4);
  stop = true;
  await done;
  assert.deepEqual(seen, ['two', 'three', 'before-rotate', 'after-rotate']);
});

test('following restarts from the top when the file is truncated', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-cli-log-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, '0.log');
  writeFileSync(path, `${T} stdout F a long first line to make the file bigger\n`);
  const first = readLog(path);
  const seen: string[] = [];
  let stop = false;
  let polls = 0;
  const shouldStop = () => {
    polls++;
    return stop;
  };
  const done = followLog(path, first.size, { onLine: (l) => seen.push(l.text), shouldStop, pollMs: 20 });
  // Truncated only once the follower has looked at the file as it was (it asks shouldStop each round).
  for (let i = 0; i < 500 && polls < 2; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(polls >= 2, 'the follower polls');
  writeFileSync(path, `${T} stdout F x\n`);
  for (let i = 0; i < 200 && seen.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
  stop = true;
  await done;
  assert.deepEqual(seen, ['x']);
});

test('reading a conmon-written log: a 4-byte character split across P records, an unterminated last P record', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-cli-log-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, '0.log');
  const CT = '2024-05-01T10:00:00.000000001+00:00';
  const g = Buffer.from('𝄞'); // 4 bytes
  writeFileSync(
    path,
    Buffer.concat([
      Buffer.from(`${CT} stdout P clef `),
      g.subarray(0, 1),
      Buffer.from(`\n${CT} stdout P `),
      g.subarray(1),
      Buffer.from(` end\n${CT} stdout F \n${CT} stderr P no newline at exit `),
      g.subarray(0, 2),
      Buffer.from(`\n${CT} stderr P `),
      g.subarray(2),
      Buffer.from(`\n`),
    ]),
  );
  const r = readLog(path);
  assert.deepEqual(
    r.lines.map((l) => [l.time, l.stream, l.text]),
    [[CT, 'stdout', 'clef 𝄞 end']],
  );
  assert.deepEqual(
    r.asm.flush().map((l) => [l.time, l.stream, l.text]),
    [[CT, 'stderr', 'no newline at exit 𝄞']],
  );
});
