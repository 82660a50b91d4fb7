/**
 * The CRI log format module (src/cri-log.ts): the writer's splitter and timestamps, the
 * reader's record parser and line assembler, and the two against each other.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CriLineSplitter, CriLogAssembler, criRecord, parseCriLog, parseCriLogLine, rfc3339Nano, type LogLine } from '../../src/cri-log.js';

const T = '2024-05-01T10:00:00.123456789Z';
/** What conmon writes: nine fraction digits and the local offset (UTC here). */
const CONMON_T = '2024-05-01T10:00:00.120000000+00:00';

function split(input: Buffer[], max = 8): string[] {
  const out: string[] = [];
  const s = new CriLineSplitter(
    'stdout',
    (r) => out.push(r.toString()),
    () => 'T',
    max,
  );
  for (const c of input) s.push(c);
  s.end();
  return out;
}

function assemble(bytes: Buffer, step = bytes.length): { lines: LogLine[]; asm: CriLogAssembler } {
  const asm = new CriLogAssembler();
  const lines: LogLine[] = [];
  for (let i = 0; i < bytes.length; i += step) lines.push(...asm.push(bytes.subarray(i, i + step)));
  return { lines, asm };
}

test('CRI splitter emits one F record per line, across chunk boundaries', () => {
  assert.deepEqual(split([Buffer.from('ab'), Buffer.from('c\nde\n')]), ['T stdout F abc\n', 'T stdout F de\n']);
});

test('CRI splitter splits long lines into P records and flushes an unterminated tail as F', () => {
  assert.deepEqual(split([Buffer.from('0123456789ab\nxy')], 8), ['T stdout P 01234567\n', 'T stdout F 89ab\n', 'T stdout F xy\n']);
});

test('CRI splitter strips CR of CRLF and keeps empty lines', () => {
  assert.deepEqual(split([Buffer.from('a\r\n\n')]), ['T stdout F a\n', 'T stdout F \n']);
});

test('CRI splitter: a line of exactly the limit is one F record', () => {
  assert.deepEqual(split([Buffer.from('01234567\n')], 8), ['T stdout F 01234567\n']);
});

test('RFC3339Nano timestamps trim trailing zeros like Go', () => {
  const base = BigInt(Date.UTC(2024, 0, 2, 3, 4, 5)) * 1_000_000n;
  assert.equal(rfc3339Nano(base), '2024-01-02T03:04:05Z');
  assert.equal(rfc3339Nano(base + 120_000_000n), '2024-01-02T03:04:05.12Z');
  assert.equal(rfc3339Nano(base + 1n), '2024-01-02T03:04:05.000000001Z');
});

test('a CRI log line parses into time, stream, partial flag and content bytes', () => {
  const rec = (l: string) => {
    const r = parseCriLogLine(Buffer.from(l));
    return r && { ...r, content: r.content.toString() };
  };
  assert.deepEqual(rec(`${T} stdout F hello world`), { time: T, stream: 'stdout', partial: false, content: 'hello world' });
  assert.deepEqual(rec(`${T} stderr P part`), { time: T, stream: 'stderr', partial: true, content: 'part' });
  assert.deepEqual(rec(`${CONMON_T} stdout F x`), { time: CONMON_T, stream: 'stdout', partial: false, content: 'x' });
  // Empty content: the line ends after the tag.
  assert.deepEqual(rec(`${T} stdout F`), { time: T, stream: 'stdout', partial: false, content: '' });
  // Content keeps its own spaces.
  assert.equal(rec(`${T} stdout F  two  spaces `)?.content, ' two  spaces ');
  // Tags are `:`-separated; P anywhere among them marks a partial.
  assert.equal(rec(`${T} stdout F:x y`)?.partial, false);
  assert.equal(rec(`${T} stdout x:P y`)?.partial, true);
});

test('malformed lines are rejected', () => {
  for (const l of ['garbage', `${T} stdin F x`, '', ` stdout F x`, `${T} stdout `]) assert.equal(parseCriLogLine(Buffer.from(l)), undefined, JSON.stringify(l));
});

test('CRI log lines parse into stream records; partial lines and an unfinished tail are kept apart', () => {
  const buf = Buffer.from(
    '2024-01-01T00:00:00Z stdout P hel\n2024-01-01T00:00:00Z stdout F lo\nnot a record\n2024-01-01T00:00:00Z stderr F oops\n2024-01-01T00:00:00Z std',
  );
  const { records, rest } = parseCriLog(buf);
  assert.deepEqual(
    records.map((r) => [r.stream, r.partial, r.content.toString()]),
    [
      ['stdout', true, 'hel'],
      ['stdout', false, 'lo'],
      ['stderr', false, 'oops'],
    ],
  );
  assert.equal(rest.toString(), '2024-01-01T00:00:00Z std');
  // Contents are copies: the caller may reuse its buffer.
  buf.fill(0);
  assert.equal(records[0]?.content.toString(), 'hel');
});

test('partial records join into one line per stream, in any chunking', () => {
  const bytes = Buffer.from(`${T} stdout P ab\n${T} stderr F err\n${T} stdout P cd\n${T} stdout F ef\n${T} stdout F next\n`);
  for (const step of [1, 3, 7, bytes.length]) {
    assert.deepEqual(
      assemble(bytes, step).lines.map((l) => `${l.stream}:${l.text}`),
      ['stderr:err', 'stdout:abcdef', 'stdout:next'],
      `chunk size ${step}`,
    );
  }
});

test('multi-byte characters split across chunks survive', () => {
  const bytes = Buffer.from(`${T} stdout F héllo ☃\n`);
  assert.equal(assemble(bytes, 1).lines[0]?.text, 'héllo ☃');
});

test('a 4-byte character split across two P records (conmon timestamps) is one character', () => {
  const emoji = Buffer.from('😀'); // f0 9f 98 80
  assert.equal(emoji.length, 4);
  const bytes = Buffer.concat([
    Buffer.from(`${CONMON_T} stdout P a`),
    emoji.subarray(0, 2),
    Buffer.from(`\n${CONMON_T} stderr F other\n${CONMON_T} stdout P `),
    emoji.subarray(2),
    Buffer.from(`b\n${CONMON_T} stdout F c\n`),
  ]);
  for (const step of [1, 5, bytes.length]) {
    const { lines } = assemble(bytes, step);
    assert.deepEqual(
      lines.map((l) => [l.time, l.stream, l.text]),
      [
        [CONMON_T, 'stderr', 'other'],
        [CONMON_T, 'stdout', 'a😀bc'],
      ],
      `chunk size ${step}`,
    );
  }
});

test('an unterminated last P record is kept until flush, decoded whole', () => {
  const emoji = Buffer.from('😀');
  const bytes = Buffer.concat([
    Buffer.from(`${CONMON_T} stdout F done\n${CONMON_T} stdout P x`),
    emoji.subarray(0, 3),
    Buffer.from(`\n${CONMON_T} stdout P `),
    emoji.subarray(3),
    Buffer.from(`y\n`),
  ]);
  const { lines, asm } = assemble(bytes, 2);
  assert.deepEqual(
    lines.map((l) => l.text),
    ['done'],
  );
  assert.deepEqual(asm.flush(), [{ time: CONMON_T, stream: 'stdout', text: 'x😀y' }]);
  assert.deepEqual(asm.flush(), [], 'flushed once');
});

test('what the splitter writes, the assembler reads back: long lines of multibyte text', () => {
  const text = ['😀'.repeat(7) + 'é', '', 'plain', 'ü'.repeat(20)];
  const records: Buffer[] = [];
  // 5 bytes per record: every 4-byte character and most 2-byte ones straddle records.
  const s = new CriLineSplitter(
    'stderr',
    (r) => records.push(r),
    () => CONMON_T,
    5,
  );
  s.push(Buffer.from(text.join('\n') + '\n'));
  s.end();
  assert.ok(records.filter((r) => r.includes(' P ')).length > 10, 'lines were cut into P records');
  const { lines } = assemble(Buffer.concat(records), 3);
  assert.deepEqual(
    lines.map((l) => l.text),
    text,
  );
  assert.ok(lines.every((l) => l.stream === 'stderr' && l.time === CONMON_T));
  assert.equal(criRecord(T, 'stdout', true, Buffer.from('x')).toString(), `${T} stdout P x\n`);
});
