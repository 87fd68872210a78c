// npm run build's second step: the program as shipped. esbuild bundles src/cli.ts into
// dist/pg-reaper/, split at each dynamic import so that a verb loads only its own code: `check`
// never loads pg, `once` never loads the HTTP server or the scheduler. One directory, no module
// resolution through node_modules at start. prom-client stays a runtime dependency (it is
// required by path, part by part). Only src/ is reachable from here: the development tooling in
// dev/ (embedded server, demo) is compiled by tsc into dist/dev/ and never bundled or shipped.
import { build } from 'esbuild';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
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

// pg asks at load whether it runs on Cloudflare Workers: where there is no `navigator` (Node 20)
// it constructs a `Response`, and that one global loads Node's fetch (undici) with http, http2,
// zlib and web streams: 130 built-in modules instead of 60, a third of `once`'s start-up on Node 20.
// pg-reaper runs on Node only; the answer is no. The build fails if pg's code no longer matches,
// so that a pg update is looked at rather than silently missed.
const notCloudflare = {
  name: 'pg-not-cloudflare',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/]pg[\\/]lib[\\/]stream\.js$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      const marker = 'function isCloudflareRuntime() {';
      if (!text.includes(marker)) throw new Error(`${args.path}: no "${marker}" to answer; look at how this pg version detects Cloudflare and update scripts/bundle.mjs`);
      return { contents: text.replace(marker, `${marker}\n  return false; // pg-reaper: never on Cloudflare Workers (scripts/bundle.mjs)`), loader: 'js' };
    });
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
  plugins: [onlyEnglish, notCloudflare],
  // src/version.ts: the version of the package.json the bundle is built from
  define: { PG_REAPER_BUNDLED_VERSION: JSON.stringify(JSON.parse(readFileSync('package.json', 'utf8')).version) },
  legalComments: 'none',
  logLevel: 'warning',
});

// One character above U+00FF anywhere in a file (an em dash or an arrow in a comment of pg, zod or
// ours) makes V8 hold that whole file's source as a two-byte string: the 700 kB chunk with yaml and
// zod took 1.4 MB of heap for as long as the process runs, and the scanner reads it on its slower
// two-byte path at every start. esbuild already writes strings, templates, regular expressions
// and identifiers in ASCII (charset: ascii, its default), so what is left is in comments: written
// as \uXXXX there, every file is one-byte. The build fails if a file still is not ASCII.
for (const name of await readdir(outdir)) {
  if (!name.endsWith('.js')) continue;
  const file = join(outdir, name);
  const text = await readFile(file, 'utf8');
  // per UTF-16 unit: a character beyond the BMP becomes its two surrogates, as in a JS string
  const ascii = text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (/[^\x00-\x7f]/.test(ascii)) throw new Error(`${file}: not ASCII after escaping`);
  if (ascii !== text) await writeFile(file, ascii);
}
