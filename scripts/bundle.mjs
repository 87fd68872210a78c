// npm run build's second step: the program as shipped. esbuild bundles src/cli.ts into
// dist/pg-reaper/, split at each dynamic import so that a verb loads only its own code: `check`
// never loads pg, `once` never loads the HTTP server or the scheduler. One directory, no module
// resolution through node_modules at start. prom-client stays a runtime dependency (it is
// required by path, part by part). Only src/ is reachable from here: the development tooling in
// dev/ (embedded server, demo) is compiled by tsc into dist/dev/ and never bundled or shipped.
import { build } from 'esbuild';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';

// zod's classic API re-exports every locale (z.locales.*), and esbuild keeps that namespace whole:
// 7,500 lines of other languages' messages, parsed at every start. We use English only, which
// zod registers from its own import of locales/en.js.
const onlyEnglish = {
  name: 'zod-locales-en-only',
  setup(b) {
    b.onResolve({ filter: /locales\/index\.js$/ }, (args) => (/zod[\\/]v4[\\/]/.test(args.importer) ? { path: join(dirname(args.importer), '../locales/index.js'), namespace: 'zod-en' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'zod-en' }, (args) => ({ contents: `export { default as en } from ${JSON.stringify(join(dirname(args.path), 'en.js'))};`, loader: 'js', resolveDir: dirname(args.path) }));
  },
};

const outdir = 'dist/pg-reaper';
await rm(outdir, { recursive: true, force: true });
await build({
  entryPoints: ['src/cli.ts'],
  outdir,
  entryNames: '[name]',
  chunkNames: '[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // the CommonJS inside (pg, pino, yaml's dependencies) calls require(): give each file one
  banner: { js: "import { createRequire as __pgReaperRequire } from 'node:module'; const require = __pgReaperRequire(import.meta.url);" },
  external: ['pg-native', 'prom-client', 'prom-client/*'],
  plugins: [onlyEnglish],
  legalComments: 'none',
  logLevel: 'warning',
});
