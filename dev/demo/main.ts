// `npm run demo`: the demo's entry point. It runs from a checkout only (dist/dev, compiled by
// `npm run build`), never from the package or the image, which ship the product alone.
import { demoUnavailable, runDemo } from './demo.js';

const missing = await demoUnavailable();
if (missing) {
  process.stderr.write(`pg-reaper demo: ${missing}\n`);
  process.exit(1);
}
process.exit(await runDemo());
