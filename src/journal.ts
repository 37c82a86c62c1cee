/**
 * Durable channels: the journal a durable message is written to in the sender's transaction,
 * read back in one order by every consumer, with consumers' cursors kept in the database.
 *
 * The order every reader sees (live, replay, any page size): **commit order, and within one
 * transaction insert order**. Rolled-back rows are never visible. Reading `after: c` where `c` is
 * the cursor of a received row yields exactly the rows that followed it, in the same order,
 * whenever it is read: a row can never appear behind a cursor (see journal-sql.ts for why).
 *
 * Reading it: journal-read.ts. Needs PostgreSQL 13+ (`xid8`). The SQL and its grants:
 * `installSql()` / `pgnotify setup --print`.
 */
import pg from 'pg';
import { resolveConnection } from './connection.js';
import { describe, ErrorCode, PgNotifyError, sqlStateOf, toError } from './errors.js';
import {
  type CursorPosition,
  cursorAfterCommit,
  cursorOf,
  parseCursor,
  START_CURSOR,
} from './journal-cursor.js';
import { installSql } from './journal-install.js';
import { DEFAULT_SCHEMA, journalNames, journalStatements } from './journal-sql.js';
import type { Queryable } from './notifier.js';
import { optionsArgument } from './options.js';

/** Options of {@link installSchema}. Give `connection` or `client`. */
export interface InstallSchemaOptions {
  /** A URL or `pg.ClientConfig`: a connection is opened for the install and closed. Default `DATABASE_URL`. */
  connection?: string | pg.ClientConfig | undefined;
  /**
   * A connection (or pool) of yours. The script runs as one implicit transaction; on a client
   * already inside a transaction it joins that transaction.
   */
  client?: Queryable;
  /** The schema to install into (created when missing). Default `'pgnotify'`. */
  schema?: string;
}

/** What {@link installSchema} found and left. */
export interface InstallResult {
  readonly schema: string;
  /** The version before the call (0: not installed). */
  readonly previousVersion: number;
  /** The version now. Greater than the library's own when a newer pgnotify installed it. */
  readonly version: number;
}

/**
 * Installs or upgrades the durable journal in `schema`: idempotent, versioned, and safe when
 * several processes run it at once (they queue on an advisory lock). Its SQL, with the grants
 * a least-privileged role needs, is `installSql(schema)` (`pgnotify setup --print`).
 * @example
 * await installSchema({ connection: process.env.DATABASE_URL })
 */
export async function installSchema(options: InstallSchemaOptions = {}): Promise<InstallResult> {
  optionsArgument('installSchema', options, 'pass it as { client }');
  if (options.client !== undefined && options.connection !== undefined) {
    throw new PgNotifyError(
      ErrorCode.INVALID_OPTION,
      'installSchema: give connection or client, not both',
    );
  }
  const schema = options.schema ?? DEFAULT_SCHEMA;
  const script = installSql(schema, undefined, { forClient: true });
  const run = async (client: Queryable) => {
    const results = (await client.query(script)) as unknown;
    const list = Array.isArray(results) ? (results as { rows?: Record<string, unknown>[] }[]) : [];
    const find = (key: string) =>
      Number(list.find((r) => r.rows?.[0]?.[key] !== undefined)?.rows?.[0]?.[key]);
    return { schema, previousVersion: find('previous'), version: find('current') };
  };
  try {
    if (options.client !== undefined) return await run(options.client);
    const config = resolveConnection(options.connection);
    const client = new pg.Client({ application_name: 'pgnotify-setup', ...config });
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (error) {
      throw new PgNotifyError(
        ErrorCode.CONNECTION_FAILED,
        `installSchema could not connect: ${toError(error).message}`,
        { cause: error, retryable: true },
      );
    }
    try {
      return await run(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  } catch (error) {
    throw journalError(error, 'installing the journal schema failed', schema);
  }
}

/**
 * The channel every durable write in `schema` wakes listeners on: one LISTEN covers all durable
 * traffic of a schema. Its payloads: the channel written to (from the write statement), and the
 * signed commit itself (from the commit trigger, schema version 2). `'pgnotify.wake'` by default.
 */
export function wakeChannel(schema: string = DEFAULT_SCHEMA): string {
  return journalNames(schema).wakeChannel;
}

/** Options shared by the cursor calls. */
export interface JournalOptions {
  /** The journal's schema. Default `'pgnotify'`. */
  schema?: string;
}

/**
 * Turns a position into a cursor: `'start'` is before every row, `'now'` is after the newest
 * committed row (only what commits later follows it), a cursor is checked and returned.
 */
export async function resolveCursor(
  queryable: Queryable,
  position: CursorPosition,
  options: JournalOptions = {},
): Promise<string> {
  if (position === 'start') return START_CURSOR;
  if (position !== 'now') {
    parseCursor(position);
    return position;
  }
  const schema = options.schema ?? DEFAULT_SCHEMA;
  try {
    const res = (await queryable.query(journalStatements(schema).head)) as {
      rows: { seq: string | null }[];
    };
    const seq = res.rows[0]?.seq ?? null;
    return seq === null ? START_CURSOR : cursorAfterCommit(seq);
  } catch (error) {
    throw journalError(error, 'reading the journal head failed', schema);
  }
}

/** The stored cursor of the named consumer, or undefined when it has none yet. */
export async function loadCursor(
  queryable: Queryable,
  name: string,
  options: JournalOptions = {},
): Promise<string | undefined> {
  const schema = options.schema ?? DEFAULT_SCHEMA;
  checkConsumer(name);
  try {
    const res = (await queryable.query(journalStatements(schema).loadCursor, [name])) as {
      rows: { seq: string; id: string }[];
    };
    const row = res.rows[0];
    return row === undefined ? undefined : cursorOf(row.seq, row.id);
  } catch (error) {
    throw journalError(error, 'loading a consumer cursor failed', schema);
  }
}

/**
 * Stores the named consumer's cursor, never moving it backwards: resolves true when it moved,
 * false when the stored one was already at or past `cursor` (a late or duplicate ack).
 */
export async function saveCursor(
  queryable: Queryable,
  name: string,
  cursor: string,
  options: JournalOptions = {},
): Promise<boolean> {
  const schema = options.schema ?? DEFAULT_SCHEMA;
  checkConsumer(name);
  const key = parseCursor(cursor);
  try {
    const res = (await queryable.query(journalStatements(schema).saveCursor, [
      name,
      key.seq,
      key.id,
    ])) as { rows: unknown[] };
    return res.rows.length === 1;
  } catch (error) {
    throw journalError(error, 'saving a consumer cursor failed', schema);
  }
}

function checkConsumer(name: unknown): void {
  if (typeof name !== 'string' || name === '' || name.includes('\0') || !name.isWellFormed()) {
    throw new PgNotifyError(
      ErrorCode.INVALID_OPTION,
      `consumer: expected a non-empty name without NUL, got ${describe(name)}`,
    );
  }
}

const MISSING_STATES = new Set(['42P01', '3F000', '42883']);

/**
 * Whether a server error says the journal is not installed (undefined table, schema or
 * function): the case {@link journalError} turns into `PGNOTIFY_SCHEMA_MISSING`.
 * @internal
 */
export function isSchemaMissing(error: unknown): boolean {
  return MISSING_STATES.has(sqlStateOf(error) ?? '');
}

/**
 * Wraps a failure of a journal statement: a missing table/schema/function becomes
 * `PGNOTIFY_SCHEMA_MISSING` with the fix; anything else `code` with the error as cause.
 * @internal
 */
export function journalError(
  error: unknown,
  what: string,
  schema: string,
  code: ErrorCode = ErrorCode.JOURNAL_FAILED,
  channel?: string,
): PgNotifyError {
  if (error instanceof PgNotifyError) return error;
  const state = sqlStateOf(error);
  const details = { cause: error, ...(channel === undefined ? {} : { channel }) };
  if (state !== undefined && MISSING_STATES.has(state)) {
    return new PgNotifyError(
      ErrorCode.SCHEMA_MISSING,
      `the durable journal is not installed in schema ${JSON.stringify(schema)}: run \`pgnotify setup\` or installSchema() (${toError(error).message})`,
      details,
    );
  }
  // Connection-level failures (no SQLSTATE, class 08) and serialization/deadlock may pass on retry.
  const retryable =
    state === undefined || state.startsWith('08') || state === '40001' || state === '40P01';
  return new PgNotifyError(code, `${what}: ${toError(error).message}`, { ...details, retryable });
}
