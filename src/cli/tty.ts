/** The local terminal for -t sessions: raw mode while the session runs, and size changes. */
import type { RemoteCommandIO, TerminalSize } from './stream-client.js';

export interface LocalTerminal {
  size?: TerminalSize;
  onResize?: RemoteCommandIO['onResize'];
  /** Puts the terminal back the way it was. */
  restore(): void;
}

export function setupTerminal(tty: boolean): LocalTerminal {
  const stdin = process.stdin;
  const stdout = process.stdout;
  if (!tty || !stdout.isTTY) return { restore: () => {} };
  const wasRaw = stdin.isTTY ? stdin.isRaw : false;
  // Raw mode: keys (Ctrl-C included) go to the remote side, which owns the line discipline.
  if (stdin.isTTY) stdin.setRawMode(true);
  return {
    size: { width: stdout.columns, height: stdout.rows },
    onResize: (send) => {
      // Node turns SIGWINCH into 'resize' on a TTY stdout.
      const h = (): void => send({ width: stdout.columns, height: stdout.rows });
      stdout.on('resize', h);
      return () => stdout.off('resize', h);
    },
    restore: () => {
      if (stdin.isTTY) stdin.setRawMode(wasRaw);
    },
  };
}
