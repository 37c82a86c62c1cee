/**
 * Durable channels: the journal a durable message is written to in the sender's transaction,
 * read back in one order by every consumer, with consumers' cursors kept in the database.
 *
 * The order every reader sees (live, replay, any page size): **commit order, and within one
 * transaction insert order**. Rolled-back rows are never visible. Reading `after: c` where `c` is
 * the cursor of a received row yields exactly the rows that followed it, in the same order,
 * whenever it is read: a row can never appear behind a cursor (see journal-sql.ts for why).
 *
 * Needs PostgreSQL 13+ (`xid8`). The SQL and its grants: `installSql()` / `pgnotify setup --print`.
 */
import pg from 'pg';
import { describe, ErrorCode, PgNotifyError, sqlStateOf, toError } from './errors.js';
import {
  type CursorPosition,
  cursorAfterCommit,
  cursorOf,
  parseCursor,
  START_CURSOR,
} from './journal-cursor.js';
import { installSql } from './journal-install.js';
import {
  DEFAULT_SCHEMA,
  journalNames,
  journalStatements,
  prepareReadSql,
  type ReadValues,
  readInlineSql,
  readPreparedSql,
} from './journal-sql.js';
import type { Queryable } from './notifier.js';
import { intOption } from './options.js';
import { checkChannel } from './sql.js';
import type { ExpiredGap } from './types.js';

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
    const connection = options.connection ?? process.env.DATABASE_URL;
    const config =
      typeof connection === 'string' ? { connectionString: connection } : { ...connection };
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
 * Most commits one read looks at (more when `limitRows` is larger): bounds a page's time when
 * the channels read are rare among many commits.
 */
const COMMIT_WINDOW = 1000;

/** One durable message as read from the journal. */
export interface JournalRow {
  /** Its position: read `after: cursor` to get what follows it. */
  readonly cursor: string;
  readonly channel: string;
  readonly payload: string;
  /** The sender's backend pid. */
  readonly pid: number;
  /** When its transaction was sequenced at commit (ms since the epoch). */
  readonly committedAt: number;
}

export type { ExpiredGap } from './types.js';

/** Options of {@link readJournal}. */
export interface ReadJournalOptions {
  /** The journal's schema. Default `'pgnotify'`. */
  schema?: string;
  /** Only these channels. Default: every channel. */
  channels?: readonly string[] | undefined;
  /** Read what follows this position. */
  after: CursorPosition;
  /** Most rows per page. Default 1 000. */
  limitRows?: number;
  /** Byte budget of a page's payloads; a page always holds at least one row. Default 8 MiB. */
  limitBytes?: number;
}

/** One page of the journal. */
export interface JournalPage {
  /** Rows in journal order. */
  readonly rows: readonly JournalRow[];
  /**
   * Prune watermarks this page crossed: each is reported by exactly one page of a sequential
   * read (the one whose range `(after, next]` holds its `to`). Deliver it before the rows whose
   * cursor is greater than its `to`.
   */
  readonly gaps: readonly ExpiredGap[];
  /** Where the next read starts; past the head when `caughtUp`, so nothing repeats. */
  readonly next: string;
  /** True when every committed row up to the reader's snapshot was returned. */
  readonly caughtUp: boolean;
}

/** One row of the read: see `read` in journal-sql.ts (a null field repeats the previous row's). */
interface ReadRow {
  k: 'h' | 'e' | 'w' | 'c' | null;
  channel: string | null;
  seq: string | null;
  id: string | null;
  /** A prune watermark's count on 'w' rows. */
  payload: string | null;
  pid: number | null;
  at: number | null;
}

/**
 * The read through the session's prepared statement: EXECUTE, and when the session does not
 * have it (a new connection: 26000), PREPARE and EXECUTE again. Two reads that both found it
 * missing both prepare it: the second's 42P05 (already prepared) is that success.
 */
async function readPrepared(
  queryable: Queryable,
  schema: string,
  values: ReadValues,
): Promise<unknown> {
  const execute = readPreparedSql(schema, values);
  try {
    return await queryable.query(execute);
  } catch (error) {
    if (sqlStateOf(error) !== '26000') throw error;
  }
  try {
    await queryable.query(prepareReadSql(schema));
  } catch (error) {
    if (sqlStateOf(error) !== '42P05') throw error;
  }
  return queryable.query(execute);
}

/**
 * Reads one page of the journal after `after`, in journal order, with memory bounded by
 * `limitRows` and `limitBytes`. Loop on `next` until `caughtUp`.
 * @example
 * let after = 'start'
 * for (;;) {
 *   const page = await readJournal(pool, { channels: ['orders'], after })
 *   for (const row of page.rows) handle(row)
 *   after = page.next
 *   if (page.caughtUp) break
 * }
 */
export function readJournal(
  queryable: Queryable,
  options: ReadJournalOptions,
): Promise<JournalPage> {
  return readPage(queryable, options, false);
}

/**
 * {@link readJournal}, with `prepared`: through the session's prepared statement of the read
 * (readPreparedSql in journal-sql.ts), prepared on first use and again whenever the session
 * lost it. Only on a connection that is a session of its own (a listener's, in listen mode).
 * @internal
 */
export async function readPage(
  queryable: Queryable,
  options: ReadJournalOptions,
  prepared: boolean,
): Promise<JournalPage> {
  const schema = options.schema ?? DEFAULT_SCHEMA;
  const limitRows = intOption('limitRows', options.limitRows, 1000, 1);
  const limitBytes = intOption('limitBytes', options.limitBytes, 8 * 1024 * 1024, 1);
  const channels =
    options.channels === undefined ? null : [...options.channels].map((c) => checkChannel(c));
  // Only 'now' needs the server: otherwise the read is sent before this call returns (a
  // catch-up asks for its next page just before it hands the current one over).
  const after =
    options.after === 'now'
      ? await resolveCursor(queryable, 'now', { schema })
      : options.after === 'start'
        ? START_CURSOR
        : options.after;
  const key = parseCursor(after);
  let result: ReadRow[];
  try {
    const values = {
      seq: key.seq,
      id: key.id,
      channels,
      limitRows,
      limitBytes,
      window: Math.max(limitRows, COMMIT_WINDOW),
    };
    const res = (await (prepared
      ? readPrepared(queryable, schema, values)
      : queryable.query(readInlineSql(schema, values)))) as { rows: ReadRow[] }[] | undefined;
    const page = Array.isArray(res) ? res[1] : undefined;
    if (page === undefined) throw new Error('expected the three results of a simple query');
    result = page.rows;
  } catch (error) {
    throw journalError(error, 'reading the journal failed', schema);
  }
  let head: string | null = null;
  let windowEnd: string | null = null;
  let cut = false;
  const marks: ReadRow[] = [];
  const rows: JournalRow[] = [];
  let seqPart = '';
  let channel = '';
  let pid = 0;
  let at = 0;
  let last = '';
  for (const r of result) {
    const k = r.k;
    if (k === null) {
      let cursor: string;
      if (r.seq !== null) {
        cursor = cursorOf(r.seq, r.id as string);
        seqPart = cursor.slice(0, 20); // "<seq, 19 digits>-"
        at = r.at as number;
      } else cursor = seqPart + (r.id as string).padStart(19, '0');
      if (r.channel !== null) channel = r.channel;
      if (r.pid !== null) pid = r.pid;
      // The fields left out rely on the rows arriving in journal order (the order of the read's
      // window): never hand out a page that is not.
      if (cursor <= last)
        throw new PgNotifyError(ErrorCode.JOURNAL_FAILED, `journal rows out of order at ${cursor}`);
      last = cursor;
      rows.push({ cursor, channel, payload: r.payload as string, pid, committedAt: at });
    } else if (k === 'c') cut = true;
    else if (k === 'h') head = r.seq;
    else if (k === 'e') windowEnd = r.seq;
    else marks.push(r);
  }
  // Every row of the commits looked at was returned: nothing cut by the byte budget, nor by the
  // row limit (each commit's rows are capped at it too).
  const whole = !cut && rows.length < limitRows;
  const caughtUp = whole && windowEnd === null;
  let next = rows.length > 0 ? (rows[rows.length - 1] as JournalRow).cursor : after;
  const end = whole ? (windowEnd ?? head) : null;
  if (end !== null) {
    const past = cursorAfterCommit(end);
    if (past > next) next = past;
  }
  const gaps: ExpiredGap[] = [];
  for (const m of marks) {
    const to = cursorOf(m.seq as string, m.id as string);
    if (to > next) continue; // a later page crosses it
    gaps.push({
      kind: 'expired',
      channel: m.channel as string,
      from: after,
      to,
      count: after === START_CURSOR ? Number(m.payload) : undefined,
      prunedAt: m.at as number,
    });
  }
  return { rows, gaps, next, caughtUp };
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
