/**
 * A bounded, structure-aware random fuzzing engine (issue 12, the program). Jazzer.js, the
 * maintained coverage-guided fuzzer on npm, installs but its native part does not load here
 * (prebuilt for glibc 2.38; Debian 12 has 2.36), so inputs come from generators that know
 * each format (valid frames, tars, manifests) followed by byte-level mutations.
 *
 * Every input is derived from (seed, iteration) alone, so any finding is reproduced by its
 * iteration number. Properties checked per input: the target throws nothing but the errors
 * it documents (`expected`), an input finishes within `capMs`, and the heap does not grow
 * past `maxHeapMb` over the run. Targets may add their own checks (the unpacker: nothing
 * written outside its root).
 */

/** xorshift128+ on two 32-bit halves: fast, deterministic, seedable. */
export class Rng {
  private a: number;
  private b: number;
  constructor(seed: number) {
    this.a = (seed ^ 0x9e3779b9) >>> 0 || 1;
    this.b = (Math.imul(seed, 0x85ebca6b) ^ 0xc2b2ae35) >>> 0 || 2;
    for (let i = 0; i < 8; i++) this.u32();
  }
  u32(): number {
    let x = this.a;
    const y = this.b;
    this.a = y;
    x ^= x << 23;
    x ^= x >>> 17;
    x ^= y ^ (y >>> 26);
    this.b = x >>> 0;
    return (this.a + this.b) >>> 0;
  }
  /** 0 ≤ n < max. */
  int(max: number): number {
    return max <= 1 ? 0 : this.u32() % max;
  }
  bool(p = 0.5): boolean {
    return this.u32() / 0x100000000 < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)] as T;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }
  /** Integers that break parsers: edges of 8/16/32/53/64 bits, negatives, small. */
  interesting(): number {
    return this.pick([
      0,
      1,
      -1,
      2,
      7,
      8,
      127,
      128,
      255,
      256,
      511,
      512,
      4096,
      65535,
      65536,
      0x7fffffff,
      0x80000000,
      0xffffffff,
      2 ** 32,
      2 ** 53 - 1,
      2 ** 53,
      -(2 ** 31),
      1e21,
      0.5,
      NaN,
    ]);
  }
  str(max = 16): string {
    const alphabet = ['a', 'b', 'Z', '0', '9', '/', '.', '..', '-', '_', ':', '@', '\0', ' ', '%', '\u00e9', '\ud800', '\u{1f600}', '\n', '"', '\\'];
    let s = '';
    const n = this.int(max + 1);
    for (let i = 0; i < n; i++) s += this.pick(alphabet);
    return s;
  }
}

/** Byte-level mutations of a well-formed input (AFL's havoc, in small). */
export function mutate(rng: Rng, input: Buffer, rounds = 1 + rng.int(4)): Buffer {
  let b: Buffer<ArrayBufferLike> = Buffer.from(input);
  for (let r = 0; r < rounds; r++) {
    const at = b.length === 0 ? 0 : rng.int(b.length);
    switch (rng.int(9)) {
      case 0: // flip a bit
        if (b.length) b[at] = (b[at] as number) ^ (1 << rng.int(8));
        break;
      case 1: // random byte
        if (b.length) b[at] = rng.int(256);
        break;
      case 2: // interesting 32-bit value, either endianness
        if (b.length >= at + 4) {
          const v = rng.interesting() >>> 0;
          if (rng.bool()) b.writeUInt32BE(v, at);
          else b.writeUInt32LE(v, at);
        }
        break;
      case 3: // truncate
        b = b.subarray(0, at);
        break;
      case 4: // delete a range
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + rng.int(64)))]);
        break;
      case 5: // insert random bytes
        b = Buffer.concat([b.subarray(0, at), rng.bytes(1 + rng.int(32)), b.subarray(at)]);
        break;
      case 6: // duplicate a range
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + 1 + rng.int(512)), b.subarray(at)]);
        break;
      case 7: // ASCII digits (octal/decimal fields)
        if (b.length) b[at] = 0x30 + rng.int(10);
        break;
      default: // 0xff run
        b.fill(0xff, at, Math.min(b.length, at + 1 + rng.int(8)));
    }
  }
  return Buffer.from(b);
}

/** Splits a buffer into random chunks (parsers must not care where reads end). */
export function chunks(rng: Rng, b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (off < b.length) {
    const n = rng.bool(0.3) ? 1 + rng.int(8) : 1 + rng.int(Math.max(1, b.length));
    out.push(b.subarray(off, off + n));
    off += n;
  }
  return out;
}

export interface Target<I = unknown> {
  name: string;
  /** A structured input for iteration `rng` (then usually mutated). */
  gen(rng: Rng): I;
  /** Runs one input; may throw. */
  run(input: I): Promise<void> | void;
  /** Errors the target documents (typed errors); anything else is a finding. */
  expected(err: unknown): boolean;
  /** Optional per-run setup/teardown (temp dirs). */
  setup?(): Promise<void> | void;
  teardown?(): Promise<void> | void;
  /** Optional check after each input (e.g. nothing outside the root). Returns a problem. */
  after?(input: I): Promise<string | undefined> | string | undefined;
}

export interface Finding {
  target: string;
  seed: number;
  iteration: number;
  kind: 'crash' | 'hang' | 'memory' | 'check';
  message: string;
}

export interface RunResult {
  target: string;
  execs: number;
  expectedErrors: number;
  findings: Finding[];
  ms: number;
}

export interface RunOptions {
  seed: number;
  /** Time budget in ms. */
  budgetMs: number;
  /** Iteration cap (default: unbounded within the budget). */
  maxIterations?: number;
  /** Inputs run whatever the clock says (default 0): a loaded machine still tries this many. */
  minIterations?: number;
  /** Per-input time cap in ms (default 2000). */
  capMs?: number;
  /** Heap ceiling in MiB (default 512). */
  maxHeapMb?: number;
  /** Stop at the first finding (default true). */
  stopOnFinding?: boolean;
  /** Where the current iteration is published (the runner's watchdog reads it). */
  progress?: Int32Array;
}

/** Deterministic per-iteration seed. */
export function iterationSeed(seed: number, i: number): number {
  return (Math.imul(seed ^ 0x5bd1e995, 0x01000193) + Math.imul(i + 1, 0x9e3779b1)) >>> 0;
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.constructor.name}: ${err.message}\n${(err.stack ?? '').split('\n').slice(1, 6).join('\n')}`;
  return String(err);
}

export async function runTarget<I>(t: Target<I>, o: RunOptions): Promise<RunResult> {
  const capMs = o.capMs ?? 2000;
  const maxHeap = (o.maxHeapMb ?? 512) * 1024 * 1024;
  const findings: Finding[] = [];
  const started = Date.now();
  let execs = 0;
  let expectedErrors = 0;
  await t.setup?.();
  try {
    for (let i = 0; o.maxIterations === undefined || i < o.maxIterations; i++) {
      if (i >= (o.minIterations ?? 0) && Date.now() - started >= o.budgetMs) break;
      if (o.progress) Atomics.store(o.progress, 0, i);
      const rng = new Rng(iterationSeed(o.seed, i));
      const input = t.gen(rng);
      const t0 = Date.now();
      let timer: NodeJS.Timeout | undefined;
      const hang = new Promise<'hang'>((r) => (timer = setTimeout(() => r('hang'), capMs)));
      const finding = (kind: Finding['kind'], message: string) => findings.push({ target: t.name, seed: o.seed, iteration: i, kind, message });
      try {
        const r = await Promise.race([Promise.resolve().then(() => t.run(input)), hang]);
        if (r === 'hang') finding('hang', `input did not finish within ${capMs} ms`);
      } catch (err) {
        if (t.expected(err)) expectedErrors++;
        else finding('crash', describe(err));
      } finally {
        clearTimeout(timer);
      }
      execs++;
      // A synchronous target cannot be interrupted: its time is checked once it returns.
      const took = Date.now() - t0;
      if (took > capMs && findings.at(-1)?.iteration !== i) finding('hang', `input took ${took} ms (cap ${capMs} ms)`);
      const problem = await t.after?.(input);
      if (problem) finding('check', problem);
      if (i % 64 === 0 && process.memoryUsage().heapUsed > maxHeap)
        finding('memory', `heap ${Math.round(process.memoryUsage().heapUsed / 2 ** 20)} MiB > ${o.maxHeapMb ?? 512} MiB`);
      if (findings.length > 0 && o.stopOnFinding !== false) break;
    }
  } finally {
    await t.teardown?.();
  }
  return { target: t.name, execs, expectedErrors, findings, ms: Date.now() - started };
}
