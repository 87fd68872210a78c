#!/usr/bin/env -S node --max-semi-space-size=1
// The entry point, kept tiny: catch signals from the first moment, turn on Node's compile cache
// where Node has it (22.1+), then load the command line. Modules loaded after the cache is on
// are compiled from it on the next start.
import './cli/early-signals.js';
import { enableCompileCache } from './cli/compile-cache.js';

enableCompileCache();
const { run } = await import('./cli/main.js');
run(process.argv.slice(2));
