/**
 * Journal test helpers: a schema of its own per test file and run (parallel runs and passes
 * never collide), installed once and dropped at the end, and a full read of the journal.
 */
import { randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import pg from 'pg';
import { installSchema } from '../../src/journal.js';
import { type JournalRow, readJournal } from '../../src/journal-read.js';
import type { Queryable } from '../../src/notifier.js';
import { quoteIdent } from '../../src/sql.js';
import { databaseUrl } from './db.js';

/** A schema name unique to this process and call: `pgn_<prefix>_<pid>_<random>`. */
export function uniqueSchema(prefix: string): string {
  return `pgn_${prefix}_${process.pid.toString(36)}_${randomBytes(4).toString('hex')}`;
}

/** A pool on this pass's server that never crashes the process on a dropped connection. */
export function testPool(max = 4): pg.Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl(),
    max,
    application_name: 'pgnotify-test-journal',
  });
  pool.on('error', () => undefined);
  return pool;
}

/**
 * A journal schema of the calling file (or describe block) alone: installed before its tests,
 * dropped after them, with a pool on this pass's server (`max` connections).
 */
export function journalFixture(
  prefix: string,
  max = 2,
): { readonly schema: string; readonly pool: pg.Pool } {
  const schema = uniqueSchema(prefix);
  const pool = testPool(max);
  before(async () => {
    await installSchema({ client: pool, schema });
  });
  after(async () => {
    await dropSchema(pool, schema);
    await pool.end();
  });
  return { schema, pool };
}

/** Drops `schema` and everything in it. */
export async function dropSchema(pool: pg.Pool, schema: string): Promise<void> {
  await pool.query(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE`);
}

/** Every row after `after`, page by page. */
export async function readAll(
  pool: Queryable,
  schema: string,
  after = 'start',
  options: { channels?: string[]; limitRows?: number; limitBytes?: number } = {},
): Promise<JournalRow[]> {
  const rows: JournalRow[] = [];
  let cursor = after;
  for (;;) {
    const page = await readJournal(pool, { schema, after: cursor, ...options });
    rows.push(...page.rows);
    cursor = page.next;
    if (page.caughtUp) return rows;
  }
}

/** A connected client (errors swallowed: fault tests may kill it). */
export async function connect(): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: databaseUrl(),
    application_name: 'pgnotify-test-journal',
  });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/**
 * Whether `text` is a journal read as a listener sends it: the inline read, or an EXECUTE of
 * its session's prepared read (listen mode; the PREPARE itself is not a read).
 */
export function isJournalRead(text: unknown): boolean {
  return (
    typeof text === 'string' &&
    !text.startsWith('PREPARE') &&
    (text.includes("'h' AS k") || text.includes('EXECUTE pgnotify_read_'))
  );
}
