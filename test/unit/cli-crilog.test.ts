import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CriLogAssembler, followLog, formatLogLine, lastLines, parseCriLogLine, readLog, type LogLine } from '../../src/cli/crilog.js';

const T = '2024-05-01T10:00:00.123456789Z';

test('a CRI log line parses into time, stream, partial flag and content', () => {
  assert.deepEqual(parseCriLogLine(`${T} stdout F hello world`), { time: T, stream: 'stdout', partial: false, content: 'hello world' });
  assert.deepEqual(parseCriLogLine(`${T} stderr P part`), { time: T, stream: 'stderr', partial: true, content: 'part' });
  // Empty content: the line ends after the tag.
  assert.deepEqual(parseCriLogLine(`${T} stdout F`), { time: T, stream: 'stdout', partial: false, content: '' });
  // Content keeps its own spaces.
  assert.equal(parseCriLogLine(`${T} stdout F  two  spaces `)?.content, ' two  spaces ');
});

test('malformed lines are rejected', () => {
  assert.equal(parseCriLogLine('garbage'), undefined);
  assert.equal(parseCriLogLine(`${T} stdin F x`), undefined);
  assert.equal(parseCriLogLine(''), undefined);
});

test('partial records join into one line per stream, in any chunking', () => {
  const text = `${T} stdout P ab\n${T} stderr F err\n${T} stdout P cd\n${T} stdout F ef\n${T} stdout F next\n`;
  const bytes = Buffer.from(text);
  for (const step of [1, 3, 7, bytes.length]) {
    const asm = new CriLogAssembler();
    const out: LogLine[] = [];
    for (let i = 0; i < bytes.length; i += step) out.push(...asm.push(bytes.subarray(i, i + step)));
    assert.deepEqual(
      out.map((l) => `${l.stream}:${l.text}`),
      ['stderr:err', 'stdout:abcdef', 'stdout:next'],
      `chunk size ${step}`,
    );
  }
});

test('multi-byte characters split across chunks survive', () => {
  const bytes = Buffer.from(`${T} stdout F héllo ☃\n`);
  const asm = new CriLogAssembler();
  const out: LogLine[] = [];
  for (let i = 0; i < bytes.length; i++) out.push(...asm.push(bytes.subarray(i, i + 1)));
  assert.equal(out[0]?.text, 'héllo ☃');
});

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
