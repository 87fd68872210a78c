// npm run schema: writes config.schema.json and policy-test.schema.json from the zod schemas (see
// src/config/json-schema.ts and src/replay/json-schema.ts).
import { writeFileSync } from 'node:fs';
import { configJsonSchema, renderJsonSchema } from '../dist/src/config/json-schema.js';
import { renderTestFileJsonSchema, testFileJsonSchema } from '../dist/src/replay/json-schema.js';

for (const [what, { undocumented }] of [['config keys', configJsonSchema()], ['test file keys', testFileJsonSchema()]]) {
  if (undocumented.length) {
    process.stderr.write(`${what} without a description: ${undocumented.join(', ')}\n`);
    process.exit(1);
  }
}
writeFileSync(new URL('../config.schema.json', import.meta.url), renderJsonSchema());
writeFileSync(new URL('../policy-test.schema.json', import.meta.url), renderTestFileJsonSchema());
process.stdout.write('wrote config.schema.json and policy-test.schema.json\n');
