import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { applyLayer } from '../../src/core/unpack/apply.js';
import { parsePax, readTar } from '../../src/core/unpack/tar-reader.js';
import { lgetxattr } from '../../src/core/unpack/sys.js';
import { buildTar, chunked, gnuHeader, sha256, tempDir } from '../helpers/tar.js';

const pad = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);

/** One PAX record: "LEN key=value\n" where LEN counts the whole record. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(`${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 2;
  while (String(len).length + 1 + body.length !== len) len = String(len).length + 1 + body.length;
  return Buffer.concat([Buffer.from(`${len} `), body]);
}

/** A tar with one file preceded by a PAX header carrying `records`. */
function paxTar(name: string, content: Buffer, records: Buffer[]): Buffer {
  const pax = Buffer.concat(records);
  return Buffer.concat([gnuHeader('PaxHeaders/x', 'x', pax.length), pad(pax), gnuHeader(name, '0', content.length), pad(content), Buffer.alloc(1024)]);
}

test('a binary xattr value in a PAX record reaches the file byte for byte', async (t) => {
  const root = await tempDir(t);
  // A security.capability-like value: not valid UTF-8 (0xff, 0x80, NUL bytes).
  const value = Buffer.from([0x01, 0x00, 0x00, 0x02, 0xff, 0x80, 0x00, 0x00, 0xc3, 0x28, 0x00, 0x00]);
  const tar = paxTar('bin/ping', Buffer.from('elf'), [paxRecord('SCHILY.xattr.user.cap', value)]);
  const res = await applyLayer(chunked(tar, 7), root, { mode: 'overlay' });
  assert.equal(res.diffID, sha256(tar));
  assert.deepEqual(lgetxattr(join(root, 'bin/ping'), 'user.cap'), value);
  assert.equal(readFileSync(join(root, 'bin/ping'), 'utf8'), 'elf');
});

test('PAX path and size override the header; a global header applies to later entries', async () => {
  const content = Buffer.from('0123456789');
  const global = Buffer.concat([paxRecord('uid', Buffer.from('4000000000'))]);
  const tar = Buffer.concat([
    gnuHeader('PaxHeaders/g', 'g', global.length),
    pad(global),
    ...[paxTar('short', content, [paxRecord('path', Buffer.from('a/very/long/' + 'n'.repeat(200))), paxRecord('size', Buffer.from('10'))])].map((b) =>
      b.subarray(0, b.length - 1024),
    ),
    Buffer.alloc(1024),
  ]);
  const seen: Array<{ name: string; uid: string | undefined; body: string }> = [];
  for await (const e of readTar(chunked(tar, 100))) {
    const parts: Buffer[] = [];
    for await (const c of e.body) parts.push(c);
    seen.push({ name: e.header.name, uid: e.header.pax?.uid, body: Buffer.concat(parts).toString() });
  }
  assert.deepEqual(seen, [{ name: 'a/very/long/' + 'n'.repeat(200), uid: '4000000000', body: '0123456789' }]);
});

test('unread bodies are skipped and every byte of the input is read', async () => {
  const tar = await buildTar([
    { name: 'a', content: 'x'.repeat(1500) },
    { name: 'd/', type: 'directory' },
    { name: 'b', content: 'y' },
  ]);
  const names: string[] = [];
  const src = Readable.from([tar]);
  for await (const e of readTar(src)) names.push(`${e.header.type}:${e.header.name}`);
  assert.deepEqual(names, ['file:a', 'directory:d/', 'file:b']);
  assert.equal(src.readableEnded, true);
});

test('corrupt headers, truncated data and oversized PAX records are rejected', async (t) => {
  const root = await tempDir(t);
  const good = await buildTar([{ name: 'f', content: 'hello' }]);
  const corrupt = Buffer.from(good);
  corrupt[10] = corrupt[10]! ^ 0xff;
  await assert.rejects(applyLayer(Readable.from([corrupt]), root), { code: 'unpack.bad_tar' });
  await assert.rejects(applyLayer(Readable.from([good.subarray(0, 515)]), root), { code: 'unpack.bad_tar' });
  const huge = Buffer.concat([gnuHeader('PaxHeaders/x', 'x', 2 << 20), Buffer.alloc(1024)]);
  await assert.rejects(applyLayer(Readable.from([huge]), root), { code: 'unpack.bad_tar' });
});

test('parsePax keeps values as bytes and stops at a malformed record', () => {
  const m = parsePax(Buffer.concat([paxRecord('k', Buffer.from([0xff, 0x0a, 0x00])), Buffer.from('99 broken')]));
  assert.deepEqual([...m.keys()], ['k']);
  assert.deepEqual(m.get('k'), Buffer.from([0xff, 0x0a, 0x00]));
});

/** Names (and bodies) of every entry readTar yields; the whole input must be consumed. */
async function entries(tar: Buffer): Promise<Array<{ name: string; type: string | null; body: string }>> {
  const out: Array<{ name: string; type: string | null; body: string }> = [];
  for await (const e of readTar(chunked(tar, 300))) {
    const parts: Buffer[] = [];
    for await (const c of e.body) parts.push(c);
    out.push({ name: e.header.name, type: e.header.type, body: Buffer.concat(parts).toString() });
  }
  return out;
}

test('parsing ends at the end-of-archive marker: a file hidden behind it is not applied, but its bytes are hashed', async (t) => {
  const a = Buffer.from('visible');
  const hidden = Buffer.from('smuggled');
  const tar = Buffer.concat([
    gnuHeader('a', '0', a.length),
    pad(a),
    Buffer.alloc(1024),
    gnuHeader('hidden', '0', hidden.length),
    pad(hidden),
    Buffer.alloc(1024),
  ]);
  assert.deepEqual(await entries(tar), [{ name: 'a', type: 'file', body: 'visible' }]);
  const root = await tempDir(t);
  const res = await applyLayer(chunked(tar, 64), root, { mode: 'overlay' });
  assert.equal(res.diffID, sha256(tar), 'the digest covers the bytes after the marker too');
  assert.throws(() => readFileSync(join(root, 'hidden')), /ENOENT/);
});

test('a lone zero block followed by a header is refused as corrupt', async () => {
  const a = Buffer.from('x');
  const tar = Buffer.concat([Buffer.alloc(512), gnuHeader('a', '0', a.length), pad(a), Buffer.alloc(1024)]);
  await assert.rejects(entries(tar), /invalid tar: a single zero block before a header/);
});

test('a symlink or hard link with a size field carries no data: the next header is still read', async () => {
  const next = Buffer.from('after');
  const tar = Buffer.concat([gnuHeader('l', '2', 512, 0o777, 'target'), gnuHeader('next', '0', next.length), pad(next), Buffer.alloc(1024)]);
  const got = await entries(tar);
  assert.deepEqual(
    got.map((e) => [e.name, e.type, e.body]),
    [
      ['l', 'symlink', ''],
      ['next', 'file', 'after'],
    ],
  );
});

test('global PAX records apply to entries without their own; per-entry records win; a huge global header is refused', async () => {
  const global = Buffer.concat([paxRecord('uid', Buffer.from('7')), paxRecord('gid', Buffer.from('8'))]);
  const c = Buffer.from('c');
  const tar = Buffer.concat([
    gnuHeader('PaxHeaders/g', 'g', global.length),
    pad(global),
    gnuHeader('plain', '0', c.length),
    pad(c),
    paxTar('own', c, [paxRecord('uid', Buffer.from('9'))]),
  ]);
  const seen: Array<[string, string | undefined, string | undefined]> = [];
  for await (const e of readTar(chunked(tar, 512))) seen.push([e.header.name, e.header.pax?.uid, e.header.pax?.gid]);
  assert.deepEqual(seen, [
    ['plain', '7', '8'],
    ['own', '9', '8'],
  ]);

  const many = Buffer.concat(Array.from({ length: 65 }, (_, i) => paxRecord(`comment${i}`, Buffer.from('x'))));
  const hostile = Buffer.concat([gnuHeader('PaxHeaders/g', 'g', many.length), pad(many), gnuHeader('plain', '0', c.length), pad(c), Buffer.alloc(1024)]);
  await assert.rejects(entries(hostile), /global PAX header with 65 records \(limit 64\)/);
});
