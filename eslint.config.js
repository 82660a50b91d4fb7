// ESLint for berth: typescript-eslint's recommended rules plus `berth/layers`, which encodes the
// import direction of docs/ARCHITECTURE.md ("Layers and import direction"). The layer map below
// is that section as data: a file under src/<layer>/ may import only from the layers listed for
// it (and from its own layer). Keep the two in step when the structure changes.
import { dirname, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const root = dirname(fileURLToPath(import.meta.url));
const src = resolve(root, 'src');

/** Modules every layer may import: src/*.ts at the top and the generated api/. */
export const BASE = [
  'errors',
  'error-codes',
  'log',
  'libc',
  'fsat',
  'mount',
  'cleanup',
  'fault',
  'version',
  'keyed-lock',
  'shim-protocol',
  'cgroup-stats',
  'cri-log',
  'api',
];

/** What each layer may import besides BASE and itself. `bin` launchers may import anything. */
export const LAYERS = {
  core: [],
  oci: [],
  cdi: ['oci'],
  registry: ['core'],
  network: ['core'],
  ttrpc: [],
  conmon: [],
  streaming: [],
  metrics: ['core'],
  shim: ['ttrpc', 'conmon', 'core'],
  runtime: ['ttrpc', 'core'],
  cri: ['core', 'oci', 'cdi', 'registry', 'network', 'ttrpc', 'conmon', 'streaming', 'metrics', 'runtime'],
  daemon: ['core', 'oci', 'cdi', 'registry', 'network', 'ttrpc', 'conmon', 'streaming', 'metrics', 'runtime', 'cri'],
  cli: ['cri'],
};

/** Node modules and packages that are transports or spawn processes: never in core/ or oci/. */
const NO_TRANSPORT = ['node:child_process', 'node:net', 'node:http', 'node:http2', 'node:dgram', '@grpc/grpc-js', 'undici', 'ws'];

/** The top-level part of src/ a path lies in: a folder name, or a src/*.ts module's base name. */
function layerOf(file) {
  const rel = relative(src, file);
  if (rel.startsWith('..') || rel === '') return undefined;
  const first = rel.split(sep)[0];
  return first.endsWith('.ts') || first.endsWith('.js') ? first.replace(/\.[tj]s$/, '') : first;
}

const layers = {
  meta: {
    type: 'problem',
    docs: { description: 'imports follow the layer order of docs/ARCHITECTURE.md' },
    schema: [],
    messages: {
      up: "src/{{from}}/ may not import src/{{to}} (docs/ARCHITECTURE.md, 'Layers and import direction': {{from}} may use {{allowed}})",
      transport: 'src/{{from}}/ is domain logic: it may not import the transport or process module {{mod}}',
    },
  },
  create(context) {
    const file = context.filename;
    const from = layerOf(file);
    if (!from || !(from in LAYERS)) return {};
    const allowed = new Set([...BASE, ...LAYERS[from], from]);
    const check = (node, spec) => {
      if (typeof spec !== 'string') return;
      if (spec.startsWith('.')) {
        const to = layerOf(resolve(dirname(file), spec));
        if (to !== undefined && !allowed.has(to)) {
          context.report({ node, messageId: 'up', data: { from, to, allowed: [...LAYERS[from]].join(', ') || 'only the base modules' } });
        }
      } else if ((from === 'core' || from === 'oci') && NO_TRANSPORT.includes(spec)) {
        context.report({ node, messageId: 'transport', data: { from, mod: spec } });
      }
    };
    return {
      ImportDeclaration: (node) => check(node, node.source.value),
      ExportNamedDeclaration: (node) => node.source && check(node, node.source.value),
      ExportAllDeclaration: (node) => check(node, node.source.value),
      ImportExpression: (node) => node.source.type === 'Literal' && check(node, node.source.value),
    };
  },
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'src/api/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    plugins: { berth: { rules: { layers } } },
    rules: {
      'berth/layers': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // `let x: T | undefined;` assigned once later but read by a closure made before: not a const.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // Off: it flags the initial value of `let x = fallback; try { x = … } catch {}`, which
      // TypeScript's definite-assignment analysis needs; tsc --strict already finds unused values.
      'no-useless-assignment': 'off',
    },
  },
  {
    // Bad-input and fuzz tests build deliberately ill-typed messages.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
);
