/** Small helpers about host processes, shared by the integration tests. */

/** True while a process with this pid exists (signal 0 probe). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
