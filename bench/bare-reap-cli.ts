import pg from 'pg';
import { bareSql } from './lib/reap-variants.js';

// (b) as its own process, to set beside `pg-reaper once`: connect, reap with the bare SQL,
// confirm, exit. Usage: node dist/bench/bare-reap-cli.js URL
const client = new pg.Client({ connectionString: process.argv[2], application_name: 'bench-bare' });
await client.connect();
const n = await bareSql(client);
await client.end();
process.stdout.write(`${n}\n`);
