/** berthd: the berth daemon. `berthd [--config FILE] [--log-level LEVEL]`; `berthd --default-config` prints the commented defaults. */
import { parseArgs } from 'node:util';
import { runDaemon } from '../daemon/daemon.js';

const usage = 'usage: berthd [--config FILE] [--log-level debug|info|warn|error] | --default-config | --version';
// Process-wide: the launcher's parsed command line.
let args;
try {
  args = parseArgs({
    options: {
      config: { type: 'string', short: 'c' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
      'default-config': { type: 'boolean' },
    },
    strict: true,
  }).values;
} catch (err) {
  process.stderr.write(`berthd: ${(err as Error).message}\n${usage}\n`);
  process.exit(2);
}
if (args.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
if (args.version) {
  const { BERTH_VERSION } = await import('../version.js');
  process.stdout.write(`berthd ${BERTH_VERSION}\n`);
  process.exit(0);
}
if (args['default-config']) {
  const { renderDefaultConfig } = await import('../daemon/config-template.js');
  process.stdout.write(renderDefaultConfig());
  process.exit(0);
}
runDaemon({ configFile: args.config, logLevel: args['log-level'] }).catch((err: unknown) => {
  process.stderr.write(`berthd: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
