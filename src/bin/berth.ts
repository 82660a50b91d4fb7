/** berth: the CLI. `berth [--socket PATH] [-n NAMESPACE] [-o table|json] VERB [ARGS]`. */
import { describeError, makeContext, UsageError, type Verb } from '../cli/common.js';

const verbs: Record<string, () => Promise<Verb>> = {
  version: async () => (await import('../cli/version.js')).version,
  info: async () => (await import('../cli/info.js')).info,
  pull: async () => (await import('../cli/pull.js')).pull,
  images: async () => (await import('../cli/images.js')).images,
  inspecti: async () => (await import('../cli/inspecti.js')).inspecti,
  rmi: async () => (await import('../cli/rmi.js')).rmi,
  imagefsinfo: async () => (await import('../cli/imagefsinfo.js')).imagefsinfo,
};

async function usage(): Promise<string> {
  const lines = ['usage: berth [--socket PATH] [-n NAMESPACE] [-o table|json] VERB [ARGS]', '', 'verbs:'];
  for (const [name, load] of Object.entries(verbs)) lines.push(`  ${name.padEnd(12)} ${(await load()).summary}`);
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
    process.stderr.write(`berth: ${describeError(err)}\n`);
    process.exit(1);
  },
);
