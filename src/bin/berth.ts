/** berth: the CLI. `berth [--socket PATH] [-n NAMESPACE] [-o table|json] VERB [ARGS]`. */
import { describeError, makeContext, UsageError, type Verb } from '../cli/common.js';
import { HelpRequested } from '../cli/flags.js';
import { AmbiguousRefError } from '../cli/resolve.js';
import { ConfigFileError } from '../cli/config-file.js';

const verbs: Record<string, () => Promise<Verb>> = {
  version: async () => (await import('../cli/version.js')).version,
  info: async () => (await import('../cli/info.js')).info,
  pull: async () => (await import('../cli/pull.js')).pull,
  images: async () => (await import('../cli/images.js')).images,
  inspecti: async () => (await import('../cli/inspecti.js')).inspecti,
  rmi: async () => (await import('../cli/rmi.js')).rmi,
  imagefsinfo: async () => (await import('../cli/imagefsinfo.js')).imagefsinfo,
  pods: async () => (await import('../cli/pods.js')).pods,
  ps: async () => (await import('../cli/ps.js')).ps,
  inspect: async () => (await import('../cli/inspect.js')).inspect,
  inspectp: async () => (await import('../cli/inspect.js')).inspectp,
  runp: async () => (await import('../cli/runp.js')).runp,
  create: async () => (await import('../cli/create.js')).create,
  start: async () => (await import('../cli/start.js')).start,
  run: async () => (await import('../cli/run.js')).run,
  stop: async () => (await import('../cli/stop.js')).stop,
  rm: async () => (await import('../cli/rm.js')).rm,
  stopp: async () => (await import('../cli/stopp.js')).stopp,
  rmp: async () => (await import('../cli/rmp.js')).rmp,
  logs: async () => (await import('../cli/logs.js')).logs,
  exec: async () => (await import('../cli/exec.js')).exec,
  attach: async () => (await import('../cli/attach.js')).attach,
  'port-forward': async () => (await import('../cli/portforward.js')).portForward,
  stats: async () => (await import('../cli/stats.js')).stats,
  events: async () => (await import('../cli/events.js')).events,
  trace: async () => (await import('../cli/trace.js')).trace,
};

async function usage(): Promise<string> {
  const lines = ['usage: berth [--socket PATH] [-n NAMESPACE] [-o table|json] VERB [ARGS]', '', 'verbs:'];
  for (const [name, load] of Object.entries(verbs)) lines.push(`  ${name.padEnd(13)} ${(await load()).summary}`);
  lines.push('', 'The socket defaults to $BERTH_SOCKET or /run/berth/berth.sock.');
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const g: { socket?: string; namespace?: string; output?: string } = {};
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    if (a === '--socket' || a === '-s') g.socket = val();
    else if (a.startsWith('--socket=')) g.socket = a.slice(9);
    else if (a === '-n' || a === '--namespace') g.namespace = val();
    else if (a === '-o' || a === '--output') g.output = val();
    else if (a === '-h' || a === '--help' || a === 'help') {
      process.stdout.write((await usage()) + '\n');
      return 0;
    } else break;
  }
  const verb = argv[i];
  if (!verb) {
    process.stderr.write((await usage()) + '\n');
    return 2;
  }
  const load = verbs[verb];
  if (!load) throw new UsageError(`unknown verb ${JSON.stringify(verb)}`);
  const v = await load();
  const rest = argv.slice(i + 1);
  if (v.rawArgs) {
    // The verb parses its own flags (and may pass later ones to a remote command).
    try {
      return await v.run(rest, makeContext(g));
    } catch (err) {
      if (err instanceof HelpRequested) {
        process.stdout.write(`usage: ${v.usage}\n\n${v.summary}\n`);
        return 0;
      }
      throw err;
    }
  }
  // Verb-level -o/--output is accepted too (crictl habit).
  const args: string[] = [];
  for (let j = 0; j < rest.length; j++) {
    const a = rest[j]!;
    if (a === '-o' || a === '--output') g.output = rest[++j];
    else if (a.startsWith('--output=')) g.output = a.slice(9);
    else if (a === '-h' || a === '--help') {
      process.stdout.write(`${v.usage}\n${v.summary}\n`);
      return 0;
    } else args.push(a);
  }
  return v.run(args, makeContext(g));
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith?.('ERR_PARSE_ARGS')) {
      process.stderr.write(`berth: ${(err as Error).message}\n`);
      process.exit(2);
    }
    // Bad input files and ambiguous names are the user's to fix, like gRPC errors: exit 1.
    const msg = err instanceof ConfigFileError || err instanceof AmbiguousRefError ? (err as Error).message : describeError(err);
    process.stderr.write(`berth: ${msg}\n`);
    process.exit(1);
  },
);
