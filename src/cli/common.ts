/** Shared CLI plumbing: global flags, the CRI connection, output formats. */
import { connectCri, type CriClient } from '../cri/server/client.js';
import { ERROR_CODE_TRAILER } from '../error-codes.js';

export interface CliContext {
  socket: string;
  namespace?: string;
  output: 'table' | 'json' | 'yaml';
  cri(): CriClient;
  out(s: string): void;
  err(s: string): void;
  isTTY: boolean;
}

export interface Verb {
  summary: string;
  usage: string;
  /**
   * The verb parses its own flags (src/cli/flags.ts), including -o and -h: the launcher
   * hands it the arguments untouched, so `berth exec CTR ls -h` reaches `ls`.
   */
  rawArgs?: boolean;
  run(args: string[], ctx: CliContext): Promise<number>;
}

export const DEFAULT_SOCKET = '/run/berth/berth.sock';

export function makeContext(o: { socket?: string; namespace?: string; output?: string }): CliContext {
  let client: CriClient | undefined;
  const output = (o.output ?? 'table') as CliContext['output'];
  if (!['table', 'json', 'yaml'].includes(output)) throw new UsageError(`-o: unknown output format ${JSON.stringify(o.output)} (table, json)`);
  return {
    socket: o.socket ?? process.env.BERTH_SOCKET ?? DEFAULT_SOCKET,
    namespace: o.namespace,
    output,
    cri() {
      client ??= connectCri(this.socket, this.namespace);
      return client;
    },
    out: (s) => process.stdout.write(s.endsWith('\n') ? s : s + '\n'),
    err: (s) => process.stderr.write(s.endsWith('\n') ? s : s + '\n'),
    isTTY: !!process.stdout.isTTY,
  };
}

export class UsageError extends Error {}

/** Render rows as an aligned table with a header. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** JSON with bigints as numbers (sizes) — protobuf-es messages hold int64 as bigint. */
export function toJson(v: unknown): string {
  return JSON.stringify(
    v,
    (k, x) => {
      if (k === '$typeName') return undefined;
      if (typeof x === 'bigint') return Number(x);
      if (x instanceof Uint8Array) return Buffer.from(x).toString('base64');
      return x;
    },
    2,
  );
}

export function humanBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)}${units[i]}`;
}

export function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 13);
}

/**
 * gRPC errors → one readable line, ending with berthd's error code in brackets when the
 * status carried one (the `berth-error-code` trailer, error-codes.ts).
 */
export function describeError(err: unknown): string {
  const e = err as { code?: number; details?: string; message?: string; metadata?: { get(key: string): unknown[] } };
  const names: Record<number, string> = {
    3: 'InvalidArgument',
    5: 'NotFound',
    6: 'AlreadyExists',
    9: 'FailedPrecondition',
    12: 'Unimplemented',
    13: 'Internal',
    14: 'Unavailable',
    16: 'Unauthenticated',
    4: 'DeadlineExceeded',
    7: 'PermissionDenied',
  };
  if (typeof e?.code === 'number' && e.details !== undefined) {
    const code = typeof e.metadata?.get === 'function' ? e.metadata.get(ERROR_CODE_TRAILER)[0] : undefined;
    const tag = typeof code === 'string' && code !== '' ? ` [${code}]` : '';
    if (e.code === 14) return `cannot reach berthd: ${e.details}${tag}`;
    return `${names[e.code] ?? `code ${e.code}`}: ${e.details}${tag}`;
  }
  return e?.message ?? String(err);
}
