import js from '@eslint/js';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import importX from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

/**
 * The rooms of src/, top floor first (docs/architecture.md). Dependencies point one way: a room may import
 * only rooms on floors below its own, never one beside it or above it. A new room gets a floor here
 * (test/layering.test.ts fails until it has one).
 */
export const LAYERS = [
  ['cli'],
  ['demo'],
  ['server'],
  ['router'],
  ['fleet'],
  ['rollout'],
  ['export'],
  ['validate'],
  ['recovery'],
  ['flags'],
  ['plan'],
  ['targets'],
  ['telemetry'],
  ['store'],
  ['routing'],
  ['traffic'],
  ['render'],
  ['spec'],
  ['secrets', 'health', 'units', 'backoff.ts', 'http-limits.ts'],
  ['errors.ts', 'path-inside.ts'],
  ['findings', 'error-codes.ts'],
];

/**
 * Imports that run against the floors for now, each with the reason and the way out: `[importer, imported]`
 * relative to src/. Keep this short; an entry here is a debt.
 */
const KNOWN_BACK_EDGES = []; // none today: the last one (telemetry/alerts.ts → rollout) went with issue 16

const SRC = `${import.meta.dirname}/src`;

/** `import-x/no-restricted-paths` zones: for each room, every room on its own floor or above. */
function layerZones(allow = []) {
  const zones = [];
  LAYERS.forEach((floor, i) => {
    const above = LAYERS.slice(0, i + 1).flat();
    for (const room of floor) {
      const from = above.filter((r) => r !== room);
      const excepted = new Map();
      for (const [importer, imported] of allow) {
        if (!importer.startsWith(room.endsWith('.ts') ? room : `${room}/`)) continue;
        const top = imported.split('/')[0];
        excepted.set(top, [...(excepted.get(top) ?? []), imported.slice(top.length + 1)]);
      }
      const message = `src/${room} is on floor ${LAYERS.length - i} of ${LAYERS.length}: it may import only rooms below it (the LAYERS list in eslint.config.js, docs/architecture.md).`;
      const plain = from.filter((r) => !excepted.has(r));
      if (plain.length > 0) zones.push({ target: `${SRC}/${room}`, from: plain.map((r) => `${SRC}/${r}`), message });
      for (const [r, except] of excepted) zones.push({ target: `${SRC}/${room}`, from: `${SRC}/${r}`, except, message });
    }
  });
  return zones;
}

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'bench/out/', 'examples/**/services/', '.meridian/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    // dependencies point one way: floors (LAYERS) and no import cycles
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      ...importX.flatConfigs.typescript.settings,
      'import-x/resolver': undefined,
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: `${import.meta.dirname}/tsconfig.check.json` })],
    },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-restricted-paths': ['error', { zones: layerZones() }],
    },
  },
  ...KNOWN_BACK_EDGES.map(([importer]) => ({
    files: [`src/${importer}`],
    rules: { 'import-x/no-restricted-paths': ['error', { zones: layerZones(KNOWN_BACK_EDGES.filter(([i]) => i === importer)) }] },
  })),
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        URL: 'readonly',
        Buffer: 'readonly',
      },
    },
  },
  {
    // the dashboard: plain browser ES modules (src/server/dashboard/assets)
    files: ['src/server/dashboard/assets/**/*.js'],
    languageOptions: {
      globals: {
        document: 'readonly',
        window: 'readonly',
        location: 'readonly',
        history: 'readonly',
        sessionStorage: 'readonly',
        localStorage: 'readonly',
        fetch: 'readonly',
        EventSource: 'readonly',
        FormData: 'readonly',
        matchMedia: 'readonly',
        Node: 'readonly',
        HTMLElement: 'readonly',
        HTMLInputElement: 'readonly',
        HTMLFormElement: 'readonly',
        HTMLButtonElement: 'readonly',
        HTMLSelectElement: 'readonly',
        FocusEvent: 'readonly',
        MessageEvent: 'readonly',
      },
    },
  },
);
