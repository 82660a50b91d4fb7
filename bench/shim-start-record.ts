/**
 * Runs bench/shim-start (a standalone script that measures on import) in a child process and
 * records its output in the shim-start section of BENCHMARKS.md.
 */
import { spawnSync } from 'node:child_process';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gitCommit, repoRoot } from './report.js';
import { describeMachine, machineInfo, nowUtc, writeSection } from './cri-common.js';

export interface ShimStartOptions {
  runs: number;
  record?: boolean;
  log?: (line: string) => void;
}

export async function runShimStartBench(opts: ShimStartOptions): Promise<string> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const here = fileURLToPath(import.meta.url);
  const script = join(dirname(here), `shim-start${extname(here)}`);
  // Under tsx (a .ts file) the child needs the tsx loader; compiled .js runs as is.
  const args = extname(here) === '.ts' ? ['--import', 'tsx', script] : [script];
  const machine = machineInfo();
  const r = spawnSync(process.execPath, [...args, '--runs', String(opts.runs)], { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) throw new Error(`shim-start failed (${r.status ?? r.signal}): ${r.stderr}`);
  const out = r.stdout.trim();
  for (const line of out.split('\n')) log(`shim-start: ${line}`);
  if (opts.record ?? true) {
    const root = repoRoot();
    const date = nowUtc();
    const medians = [...out.matchAll(/^(.+?)\s+median\s+([\d.]+) ms/gm)].map((m) => `${(m[1] ?? '').trim()}: ${m[2]}`);
    const file = writeSection(
      root,
      'shim-start',
      `## Shim start on the pod start path (TaskManager.create, first container of a new pod)

berth-shim started cold (\`start\` boots a Node server), berth-shim warm (a pre-spawned shim is
adopted) and containerd-shim-runc-v2 cold; each sample includes runc create. ${opts.runs} runs each.

Latest: ${date} UTC, commit ${gitCommit(root)}; ${describeMachine(machine)}.

\`\`\`
${out}
\`\`\`

Notes: the cold figure is dominated by booting Node twice (\`start\`, then the \`serve\`
process it spawns); the warm path adopts a pre-spawned shim and is what berthd's start path
uses. Figures are medians under the load noted (other work shared the 2 cores).`,
      '| date (UTC) | commit | runs | medians ms |\n| --- | --- | --- | --- |',
      `| ${date} | ${gitCommit(root)} | ${opts.runs} | ${medians.join('; ')} |`,
    );
    log(`shim-start: recorded in ${file}`);
  }
  return out;
}
