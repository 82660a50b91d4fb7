/** Small statistics and BENCHMARKS.md updating shared by the benchmarks. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** The repository root: the nearest ancestor of this file holding package.json (works from dist/ too). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above bench/');
    dir = up;
  }
  return dir;
}

export function gitCommit(root: string): string {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'unknown';
}

const HEADER = `# Benchmarks

Figures written by \`npm run bench\` (bench/run.ts). Each section is rewritten by its bench:
a table of runs, newest last. Machine: the project's standard 2-core, 24 GiB VM unless noted.
`;

/**
 * Appends `row` to the table of section `id` in BENCHMARKS.md, creating the file or the section
 * (with `intro` and `tableHead`) when missing. Rows beyond `keep` are dropped, oldest first.
 */
export function appendBenchmarkRow(root: string, id: string, title: string, intro: string, tableHead: string, row: string, keep = 20): string {
  const file = join(root, 'BENCHMARKS.md');
  let text = existsSync(file) ? readFileSync(file, 'utf8') : HEADER;
  const start = `<!-- bench:${id}:start -->`;
  const end = `<!-- bench:${id}:end -->`;
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  let rows: string[] = [];
  let notes = '';
  if (a >= 0 && b > a) {
    const lines = text.slice(a + start.length, b).split('\n');
    rows = lines.filter((l) => l.startsWith('|')).slice(2); // header + separator
    // Prose written under the table (notes about the rows) stays across re-records.
    const lastRow = lines.map((l) => l.startsWith('|')).lastIndexOf(true);
    if (lastRow >= 0)
      notes = lines
        .slice(lastRow + 1)
        .join('\n')
        .trim();
  }
  rows.push(row);
  rows = rows.slice(-keep);
  const section = `${start}\n## ${title}\n\n${intro.trim()}\n\n${tableHead.trim()}\n${rows.join('\n')}\n${notes ? `\n${notes}\n` : ''}${end}`;
  text = a >= 0 && b > a ? text.slice(0, a) + section + text.slice(b + end.length) : `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(file, text);
  return file;
}
