/**
 * Structured logger: one line per record on stderr, logfmt-style (`time=… level=… msg="…" k=v`).
 * Levels: debug < info < warn < error. Set once at start (daemon --log-level / config).
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

// Process-wide: one log level and one sink (stderr, or the journal) for the whole process.
let threshold = order.info;
let sink: (line: string) => void = (line) => process.stderr.write(line + '\n');

export function setLogLevel(level: LogLevel): void {
  threshold = order[level];
}

export function setLogSink(fn: (line: string) => void): void {
  sink = fn;
}

function fmt(v: unknown): string {
  if (v instanceof Error) v = v.message;
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s !== undefined && /^[\w./:@+-]+$/.test(s) ? s : JSON.stringify(s ?? String(v));
}

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export function logger(base: Record<string, unknown> = {}): Logger {
  const write = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (order[level] < threshold) return;
    let line = `time=${new Date().toISOString()} level=${level} msg=${fmt(msg)}`;
    for (const [k, v] of Object.entries({ ...base, ...fields })) {
      if (v !== undefined) line += ` ${k}=${fmt(v)}`;
    }
    sink(line);
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (f) => logger({ ...base, ...f }),
  };
}

export const log = logger();
