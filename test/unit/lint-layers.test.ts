/**
 * The import-direction rule of eslint.config.js (`berth/layers`, docs/ARCHITECTURE.md's layer
 * order as data): it refuses an import that goes up the layers or a transport in core/, and
 * accepts the directions the document allows, so `npm run lint` in CI really holds the layers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ESLint } from 'eslint';

const repo = process.cwd();
const eslint = new ESLint({ cwd: repo });

async function layerErrors(path: string, code: string): Promise<string[]> {
  const [r] = await eslint.lintText(code, { filePath: join(repo, path) });
  return r.messages.filter((m) => m.ruleId === 'berth/layers').map((m) => m.message);
}

test('berth/layers refuses imports against the layer order and transports in core/', async () => {
  const up = await layerErrors('src/core/images/probe.ts', "import { x } from '../../cri/recover.js';\nexport const y = x;\n");
  assert.equal(up.length, 1);
  assert.match(up[0], /src\/core\/ may not import src\/cri/);
  const shimToRuntime = await layerErrors('src/shim/probe.ts', "export { x } from '../runtime/task-manager.js';\n");
  assert.match(shimToRuntime[0] ?? '', /src\/shim\/ may not import src\/runtime/);
  const cliToDaemon = await layerErrors('src/cli/probe.ts', "const m = await import('../daemon/services.js');\nexport default m;\n");
  assert.match(cliToDaemon[0] ?? '', /src\/cli\/ may not import src\/daemon/);
  const spawnInCore = await layerErrors('src/core/probe.ts', "import { spawn } from 'node:child_process';\nexport const s = spawn;\n");
  assert.match(spawnInCore[0] ?? '', /transport or process module node:child_process/);
});

test('berth/layers accepts the directions docs/ARCHITECTURE.md allows', async () => {
  const ok: Array<[string, string]> = [
    ['src/cri/container/probe.ts', "import { x } from '../../core/snapshots/base.js';\nimport { e } from '../../errors.js';\nexport const y = [x, e];\n"],
    ['src/shim/probe.ts', "import { x } from '../ttrpc/server.js';\nimport { p } from '../shim-protocol.js';\nexport const y = [x, p];\n"],
    ['src/daemon/probe.ts', "import { x } from '../cri/recover.js';\nexport const y = x;\n"],
    ['src/core/probe.ts', "import { x } from './images/service.js';\nimport { readFile } from 'node:fs/promises';\nexport const y = [x, readFile];\n"],
    ['test/unit/probe.ts', "import { x } from '../../src/daemon/services.js';\nexport const y = x;\n"],
  ];
  for (const [path, code] of ok) assert.deepEqual(await layerErrors(path, code), [], path);
});
