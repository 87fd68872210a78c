// npm run schema: writes config.schema.json from the zod schema (see src/config/json-schema.ts).
import { writeFileSync } from 'node:fs';
import { configJsonSchema, renderJsonSchema } from '../dist/src/config/json-schema.js';

const { undocumented } = configJsonSchema();
if (undocumented.length) {
  process.stderr.write(`config keys without a description in src/config/json-schema.ts: ${undocumented.join(', ')}\n`);
  process.exit(1);
}
writeFileSync(new URL('../config.schema.json', import.meta.url), renderJsonSchema());
process.stdout.write('wrote config.schema.json\n');
