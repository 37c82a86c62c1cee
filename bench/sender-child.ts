/**
 * The bulk sender, run as a child process (see sender.ts): it executes the statements the
 * bench sends it over IPC on its own connection, so the CPU the sending side spends (pg
 * parsing 100k result rows of `SELECT pg_notify(...) FROM generate_series(...)`) is never
 * counted in the measuring process's `process.cpuUsage()`.
 */
import pg from 'pg';
import { serve } from './rpc.js';

const client = new pg.Client({
  connectionString: process.env.DATABASE_URL,
  application_name: process.argv[2] ?? 'pgnotify-bench-sender',
});
client.on('error', () => {
  // The failing query reports it.
});

await serve<{ text: string; values: unknown[] }>(
  () => client.connect(),
  async ({ text, values }) => {
    await client.query(text, values);
  },
  () => client.end(),
);
