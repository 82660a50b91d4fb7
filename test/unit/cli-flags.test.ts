import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HelpRequested, keyValues, parseFlags } from '../../src/cli/flags.js';
import { UsageError } from '../../src/cli/common.js';

const spec = {
  all: { type: 'boolean', short: 'a' },
  tail: { type: 'string' },
  label: { type: 'strings', short: 'l' },
  tty: { type: 'boolean', short: 't' },
  interactive: { type: 'boolean', short: 'i' },
} as const;

test('flags parse long, short, inline and repeated forms', () => {
  const p = parseFlags(['-a', '--tail', '5', '-l', 'a=b', '--label=c=d', 'x', 'y'], spec);
  assert.equal(p.flags.all, true);
  assert.equal(p.flags.tail, '5');
  assert.deepEqual(p.flags.label, ['a=b', 'c=d']);
  assert.deepEqual(p.positionals, ['x', 'y']);
  assert.equal(parseFlags(['--tail=7'], spec).flags.tail, '7');
});

test('combined short booleans split: -it is -i -t', () => {
  const p = parseFlags(['-it', 'ctr'], spec);
  assert.equal(p.flags.interactive, true);
  assert.equal(p.flags.tty, true);
  assert.deepEqual(p.positionals, ['ctr']);
});

test('stopAtPositional hands the rest (flags included) to the command', () => {
  const p = parseFlags(['-i', 'ctr', 'sh', '-c', 'echo -a; ls -h'], spec, { stopAtPositional: true });
  assert.equal(p.flags.interactive, true);
  assert.equal(p.flags.all, false);
  assert.deepEqual(p.positionals, ['ctr', 'sh', '-c', 'echo -a; ls -h']);
});

test('-- ends flag parsing', () => {
  assert.deepEqual(parseFlags(['--', '-a'], spec).positionals, ['-a']);
});

test('unknown flags and missing values are usage errors naming the flag', () => {
  assert.throws(
    () => parseFlags(['--bogus'], spec),
    (e: unknown) => e instanceof UsageError && /--bogus/.test(e.message),
  );
  assert.throws(
    () => parseFlags(['-z'], spec),
    (e: unknown) => e instanceof UsageError && /-z/.test(e.message),
  );
  assert.throws(
    () => parseFlags(['--tail'], spec),
    (e: unknown) => e instanceof UsageError && /--tail needs a value/.test(e.message),
  );
  assert.throws(() => parseFlags(['--all=maybe'], spec), UsageError);
});

test('-o and -h are understood by every verb', () => {
  assert.equal(parseFlags(['-o', 'json'], spec).output, 'json');
  assert.equal(parseFlags(['--output=json'], spec).output, 'json');
  assert.equal(parseFlags(['-ojson'], spec).output, 'json');
  assert.throws(() => parseFlags(['-o', 'xml'], spec), UsageError);
  assert.throws(() => parseFlags(['-h'], spec), HelpRequested);
  assert.throws(() => parseFlags(['--help'], spec), HelpRequested);
});

test('keyValues splits at the first = and rejects pairs without a key', () => {
  assert.deepEqual(keyValues(['a=b=c', 'x='], '--label'), { a: 'b=c', x: '' });
  assert.throws(() => keyValues(['novalue'], '--label'), /--label: expected KEY=VALUE/);
  assert.throws(() => keyValues(['=v'], '--label'), UsageError);
});
