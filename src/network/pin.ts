/**
 * Pinned pod namespaces: a pod's network, IPC and UTS namespaces (and, for a pod with a user
 * namespace, the user namespace that owns them) held alive by bind mounts of their nsfs
 * handles under the netns dir, without any process inside them. Containers and the optional
 * pause container join them by path.
 *
 * How (one process per pod, spawned ahead for the common case, see PinPool): berthd spawns
 * `perl -e PIN_SCRIPT`. The script
 *   1. unshare(2)s every namespace at once (CLONE_NEWUSER with the others makes the kernel
 *      create the user namespace first and make it the owner of the rest);
 *   2. with a user namespace: says "U", waits until berthd — in the parent user namespace,
 *      as the kernel requires — has written /proc/PID/uid_map and gid_map (setgroups stays
 *      "allow": runc calls setgroups(2) for a container's additional gids inside a joined
 *      user namespace, which "deny" would forbid), then becomes uid/gid 0 of the namespace so
 *      that the ownership checks of the namespaced sysctl files pass;
 *   3. (with relative paths from /proc: a host "/" without o+x blocks a user-namespace
 *      root) brings `lo` up (SIOCSIFFLAGS), says "P" and reads the pod's hostname and sysctls
 *      from stdin, sets the hostname (sethostname(2)) and writes the namespaced sysctls under
 *      /proc/sys, which resolve to the caller's namespaces;
 *   4. says "R" and blocks on stdin. berthd bind-mounts /proc/PID/ns/{user,net,ipc,uts} onto
 *      the pin files with mount(2) (MS_BIND) and closes stdin; the process exits.
 * berthd's own threads never call setns/unshare (that would move a libuv thread).
 *
 * Sysctl keys and values travel as separate hex-encoded fields and are written as file
 * contents: nothing is ever parsed out of a "key=value" string. Keys were checked by the OCI sysctl
 * allowlist (dotted names, no '/'), so the /proc/sys path cannot leave /proc/sys.
 *
 * The pin directory is the netns dir (shared propagation, see netns.ts), so the unmount at
 * unpin also reaches the slave mount trees runc gives containers. File names: the network
 * namespace keeps the plain `<id>` name CNI and `ip netns`-style tools expect; the others are
 * `<id>.ipc`, `<id>.uts`, `<id>.user`.
 *
 * unpinNamespaces: lazy unmount of every mount stacked on each file, then unlink; idempotent.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { open, readFile, rm, writeFile } from 'node:fs/promises';
import { resolve, join, dirname } from 'node:path';
import { mountAll, unmount } from '../mount.js';
import { errors, isBerthError } from '../errors.js';
import { ensureNetnsDir, parseMountInfo, type NetnsDirs } from './netns.js';

export type PinKind = 'user' | 'net' | 'ipc' | 'uts';
/** Order matters only for reading: the user namespace owns the others. */
export const PIN_KINDS: readonly PinKind[] = ['user', 'net', 'ipc', 'uts'];

export interface IdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export interface PinRequest {
  /** Sandbox id: names the pin files. */
  id: string;
  /** Directory of the pin files (the netns dir). */
  dir: string;
  net: boolean;
  ipc: boolean;
  uts: boolean;
  /** Given: a new user namespace with these mappings owns the other pinned namespaces. */
  userns?: { uidMappings: readonly IdMapping[]; gidMappings: readonly IdMapping[] };
  /** Set in the new UTS namespace (ignored without one). */
  hostname?: string;
  /** Namespaced sysctls (already validated) applied inside the new namespaces. */
  sysctls?: Readonly<Record<string, string>>;
  timeoutMs?: number;
}

/** Paths of a pod's pinned namespace handles; a kind not pinned is absent. */
export type PodPins = Partial<Record<PinKind, string>>;

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

/** Where the pins of sandbox `id` live (deterministic, so recovery can find them from the id). */
export function pinPaths(dir: string, id: string, kinds: Iterable<PinKind>): PodPins {
  if (!NAME_RE.test(id)) throw errors.invalidArgument('pin.bad_name', `invalid pod namespace name ${JSON.stringify(id)}`);
  const base = resolve(dir);
  const out: PodPins = {};
  for (const k of kinds) out[k] = k === 'net' ? join(base, id) : join(base, `${id}.${k}`);
  return out;
}

// Linux clone flags and syscall numbers per architecture (the script calls syscall(2)).
const CLONE_NEWUTS = 0x04000000;
const CLONE_NEWIPC = 0x08000000;
const CLONE_NEWUSER = 0x10000000;
const CLONE_NEWNET = 0x40000000;
const SYSCALLS: Partial<Record<string, { unshare: number; sethostname: number; setresuid: number; setresgid: number }>> = {
  x64: { unshare: 272, sethostname: 170, setresuid: 117, setresgid: 119 },
  arm64: { unshare: 97, sethostname: 161, setresuid: 147, setresgid: 149 },
};

/**
 * The pin program. argv: flags userns(0|1) lo(0|1).
 * Protocol on stdout: "U\n" (waiting for id maps; answer "G\n"), "P\n" (namespaces made, lo
 * up; answer one line of the hostname and the sysctl keys and values, each field hex-encoded
 * behind an "x", space-separated), "R\n" (namespaces ready; berthd binds them and closes
 * stdin). Errors go to stderr with exit 1; an end of stdin at any point ends it (berthd gone).
 * The fields are hex, so no byte of a value can be taken for a separator.
 */
function pinScript(nr: NonNullable<(typeof SYSCALLS)[string]>): string {
  return [
    'use strict; $| = 1;',
    'my ($flags, $userns, $lo) = @ARGV;',
    // Relative /proc paths: a user-namespace root may not search a host "/" without o+x.
    'chdir("/proc") or die "chdir /proc: $!\\n";',
    `syscall(${nr.unshare}, $flags + 0) == 0 or die "unshare: $!\\n";`,
    'if ($userns) {',
    '  print "U\\n"; my $go = <STDIN>;',
    '  exit 1 unless defined $go && $go eq "G\\n";',
    `  syscall(${nr.setresgid}, 0, 0, 0) == 0 or die "setresgid: $!\\n";`,
    `  syscall(${nr.setresuid}, 0, 0, 0) == 0 or die "setresuid: $!\\n";`,
    '}',
    'if ($lo) {',
    '  socket(my $s, 2, 2, 0) or die "socket: $!\\n";',
    '  my $req = pack("a16 x24", "lo");',
    '  ioctl($s, 0x8913, $req) or die "SIOCGIFFLAGS lo: $!\\n";',
    '  my $fl = unpack("x16 s", $req) | 1;',
    '  ioctl($s, 0x8914, pack("a16 s x22", "lo", $fl)) or die "SIOCSIFFLAGS lo: $!\\n";',
    '}',
    'print "P\\n"; my $line = <STDIN>; exit 1 unless defined $line; chomp $line;',
    'my ($host, @kv) = map { /^x([0-9a-f]*)$/ or die "bad parameters\\n"; pack("H*", $1) } split(/ /, $line);',
    'die "bad parameters\\n" if !defined $host || @kv % 2;',
    `if ($host ne "") { syscall(${nr.sethostname}, $host, length($host)) == 0 or die "sethostname: $!\\n"; }`,
    'while (@kv) {',
    '  my ($k, $v) = splice(@kv, 0, 2); (my $p = $k) =~ tr{.}{/};',
    '  open(my $f, ">", "sys/$p") or die "sysctl $k: $!\\n";',
    '  print $f $v or die "sysctl $k: $!\\n"; close($f) or die "sysctl $k: $!\\n";',
    '}',
    'print "R\\n"; my $rest = <STDIN>; exit 0;',
  ].join('\n');
}

/** The parameter line of the "P" answer: hostname, then sysctl key and value pairs. */
export function pinParams(hostname: string, sysctls: Readonly<Record<string, string>>): string {
  const hex = (v: string): string => `x${Buffer.from(v, 'utf8').toString('hex')}`;
  const fields = [hex(hostname)];
  for (const [k, v] of Object.entries(sysctls)) fields.push(hex(k), hex(v));
  return `${fields.join(' ')}\n`;
}

function mapText(m: readonly IdMapping[]): string {
  return m.map((x) => `${x.containerID} ${x.hostID} ${x.size}\n`).join('');
}

/** Reads "X\n" tokens from the child's stdout in order. */
class LineReader {
  private buf = '';
  private waiters: Array<(l: string | undefined) => void> = [];
  private lines: string[] = [];
  private ended = false;
  constructor(child: ChildProcessWithoutNullStreams) {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        this.push(this.buf.slice(0, i));
        this.buf = this.buf.slice(i + 1);
      }
    });
    child.stdout.on('close', () => {
      this.ended = true;
      for (const w of this.waiters.splice(0)) w(undefined);
    });
  }
  private push(l: string): void {
    const w = this.waiters.shift();
    if (w) w(l);
    else this.lines.push(l);
  }
  next(): Promise<string | undefined> {
    if (this.lines.length) return Promise.resolve(this.lines.shift());
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((r) => this.waiters.push(r));
  }
}

/** A running pin program, from its spawn on. */
class PinProc {
  readonly lines: LineReader;
  readonly exited: Promise<void>;
  private err = '';
  dead = false;
  private constructor(
    readonly proc: ChildProcessWithoutNullStreams,
    readonly flags: number,
  ) {
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (this.err = (this.err + d).slice(-4096)));
    proc.stdin.on('error', () => undefined);
    this.exited = new Promise<void>((r) =>
      proc.once('close', () => {
        this.dead = true;
        r();
      }),
    );
    proc.once('error', () => (this.dead = true));
    this.lines = new LineReader(proc);
  }

  static spawn(nr: NonNullable<(typeof SYSCALLS)[string]>, flags: number): PinProc {
    const userns = (flags & CLONE_NEWUSER) !== 0;
    const lo = (flags & CLONE_NEWNET) !== 0;
    return new PinProc(spawn('perl', ['-e', pinScript(nr), String(flags), userns ? '1' : '0', lo ? '1' : '0'], { stdio: ['pipe', 'pipe', 'pipe'] }), flags);
  }

  get stderr(): string {
    return this.err;
  }

  /** A spare keeps neither the event loop nor a test runner alive. */
  setRef(on: boolean): void {
    const all = [this.proc, this.proc.stdin, this.proc.stdout, this.proc.stderr] as Array<{ ref?: () => void; unref?: () => void }>;
    for (const h of all) (on ? h.ref : h.unref)?.call(h);
  }

  kill(): void {
    this.proc.kill('SIGKILL');
  }
}

/**
 * One spare pin program for the common case (network, IPC and UTS, no user namespace): spawned
 * ahead, it has made its empty namespaces and brought lo up, and waits for the pod's hostname
 * and sysctls. RunPodSandbox then pays only those and the bind mounts, not a process start
 * (pins took 18–24 ms of a pod start, most of it the spawn). The spare is made again a moment
 * after one is taken, off the request's path; unused for `idleMs` it is dropped. It holds only
 * namespaces no pod uses yet; when berthd dies its stdin ends and it exits, leaving nothing.
 * One per RuntimeContext (host-pods.ts).
 */
export class PinPool {
  private spare: PinProc | undefined;
  private refill: NodeJS.Timeout | undefined;
  private idle: NodeJS.Timeout | undefined;
  private closed = false;
  /** Pins served by a spare, and spawned on demand (for tests and the trace). */
  readonly counts = { spare: 0, spawned: 0 };

  constructor(private readonly o: { refillMs?: number; idleMs?: number } = {}) {}

  static readonly FLAGS = CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;

  /** The spare when it suits `flags` and is alive; a refill is scheduled either way. */
  take(flags: number): PinProc | undefined {
    if (this.closed || flags !== PinPool.FLAGS) return undefined;
    const s = this.spare;
    this.spare = undefined;
    clearTimeout(this.idle);
    this.schedule();
    if (!s || s.dead) {
      s?.kill();
      this.counts.spawned++;
      return undefined;
    }
    s.setRef(true);
    this.counts.spare++;
    return s;
  }

  private schedule(): void {
    if (this.refill || this.closed) return;
    this.refill = setTimeout(() => {
      this.refill = undefined;
      this.fill();
    }, this.o.refillMs ?? 100);
    this.refill.unref();
  }

  private fill(): void {
    const nr = SYSCALLS[process.arch];
    if (this.closed || this.spare || !nr) return;
    const s = PinProc.spawn(nr, PinPool.FLAGS);
    s.setRef(false);
    this.spare = s;
    void s.exited.then(() => {
      if (this.spare === s) this.spare = undefined;
    });
    this.idle = setTimeout(() => {
      if (this.spare === s) {
        this.spare = undefined;
        s.kill();
      }
    }, this.o.idleMs ?? 30_000);
    this.idle.unref();
  }

  /** The spare's pid, if one waits (tests). */
  sparePid(): number | undefined {
    return this.spare && !this.spare.dead ? this.spare.proc.pid : undefined;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.refill);
    clearTimeout(this.idle);
    this.spare?.kill();
    this.spare = undefined;
  }
}

/**
 * Creates and pins the requested namespaces; returns their paths. AlreadyExists when a pin
 * file exists; on any failure nothing is left behind. Nothing to pin → {} without a spawn.
 * With a pool, the common case is served by its spare pin program.
 */
export async function pinNamespaces(req: PinRequest, dirs?: NetnsDirs, pool?: PinPool): Promise<PodPins> {
  const kinds: PinKind[] = [];
  if (req.userns) kinds.push('user');
  if (req.net) kinds.push('net');
  if (req.ipc) kinds.push('ipc');
  if (req.uts) kinds.push('uts');
  const pins = pinPaths(req.dir, req.id, kinds);
  if (kinds.length === 0) return pins;
  const nr = SYSCALLS[process.arch];
  if (!nr) throw errors.failedPrecondition('pin.unsupported_arch', `pinned pod namespaces are not supported on ${process.arch}`);
  await ensureNetnsDir(req.dir, dirs);

  const made: string[] = [];
  let child: PinProc | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    for (const k of kinds) {
      const p = pins[k]!;
      try {
        // O_EXCL: two pods never share a handle and an existing one is never clobbered.
        await (await open(p, 'wx', 0o444)).close();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw errors.alreadyExists('pin.exists', `pod namespace handle ${p} already exists`, err);
        throw errors.internal('pin.create_failed', `create ${p}: ${(err as Error).message}`, err);
      }
      made.push(p);
    }

    let flags = 0;
    if (req.userns) flags |= CLONE_NEWUSER;
    if (req.net) flags |= CLONE_NEWNET;
    if (req.ipc) flags |= CLONE_NEWIPC;
    if (req.uts) flags |= CLONE_NEWUTS;
    const proc = pool?.take(flags) ?? PinProc.spawn(nr, flags);
    child = proc;
    const failed = new Promise<never>((_, reject) => {
      proc.proc.once('error', (err) => reject(errors.internal('pin.exec_failed', `cannot run perl: ${err.message}`, err)));
      timer = setTimeout(() => reject(errors.deadlineExceeded('pin.timeout', `pinning the namespaces of ${req.id} timed out`)), req.timeoutMs ?? 10_000);
    });
    failed.catch(() => undefined);
    const expect = async (want: string): Promise<void> => {
      const got = await Promise.race([proc.lines.next(), failed]);
      if (got === want) return;
      await Promise.race([proc.exited, new Promise((r) => setTimeout(r, 1000))]);
      throw errors.internal(
        'pin.failed',
        `pinning the namespaces of ${req.id}: ${proc.stderr.trim() || `unexpected ${JSON.stringify(got)} from the pin process`}`,
      );
    };

    if (req.userns) {
      await expect('U');
      const pid = proc.proc.pid!;
      // Written from berthd (parent user namespace, CAP_SETUID/CAP_SETGID there).
      await writeFile(`/proc/${pid}/uid_map`, mapText(req.userns.uidMappings));
      await writeFile(`/proc/${pid}/gid_map`, mapText(req.userns.gidMappings));
      proc.proc.stdin.write('G\n');
    }
    await expect('P');
    proc.proc.stdin.write(pinParams(req.uts ? (req.hostname ?? '') : '', req.sysctls ?? {}));
    await expect('R');
    for (const k of kinds) mountAll([{ type: 'bind', source: `/proc/${proc.proc.pid}/ns/${k}`, options: ['bind'] }], pins[k]!);
    proc.proc.stdin.end();
    await Promise.race([proc.exited, failed]);
    return pins;
  } catch (err) {
    child?.kill();
    // Only the files this call made: an existing pin (AlreadyExists) belongs to someone else.
    const mine = Object.fromEntries(Object.entries(pins).filter(([, p]) => made.includes(p))) as PodPins;
    await unpinNamespaces(mine).catch(() => undefined);
    if (!isBerthError(err)) throw errors.internal('pin.failed', `pinning the namespaces of ${req.id}: ${(err as Error).message}`, err);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** Unmounts (lazily, every stacked mount) and deletes each pin file; fine when already gone. */
export async function unpinNamespaces(pins: PodPins): Promise<void> {
  // The user namespace last: it owns the others.
  for (const k of ['net', 'ipc', 'uts', 'user'] as const) {
    const p = pins[k];
    if (!p) continue;
    try {
      unmount(p, { detach: true, all: true });
      await rm(p, { force: true });
    } catch (err) {
      throw errors.internal('pin.remove_failed', `unpin ${p}: ${(err as Error).message}`, err);
    }
  }
}

const NSFS_ROOT: Record<PinKind, string> = { user: 'user:[', net: 'net:[', ipc: 'ipc:[', uts: 'uts:[' };

/** True when every given pin is a live handle of its kind (an nsfs mount on the file). */
export async function pinsAlive(pins: PodPins): Promise<boolean> {
  const entries = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
  return (Object.entries(pins) as Array<[PinKind, string]>).every(([k, p]) => {
    const abs = resolve(p);
    return entries.some((m) => m.mountPoint === abs && m.fsType === 'nsfs' && m.root.startsWith(NSFS_ROOT[k]));
  });
}

/** Sandbox ids with at least one pin file in `dir` (for reconciling at start). */
export async function listPinnedIds(dir: string): Promise<string[]> {
  const abs = resolve(dir);
  const entries = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
  const ids = new Set<string>();
  for (const m of entries) {
    if (m.fsType !== 'nsfs' || dirname(m.mountPoint) !== abs) continue;
    const name = m.mountPoint.slice(abs.length + 1);
    ids.add(name.replace(/\.(ipc|uts|user)$/, ''));
  }
  return [...ids].sort();
}
