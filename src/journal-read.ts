/**
 * Reading the journal: pages in journal order (commit order, then insert order within a
 * transaction), bounded in rows and bytes, with prune watermarks reported as expired gaps. The
 * read statement and why it is shaped so: journal-sql.ts.
 */
import { ErrorCode, PgNotifyError, sqlStateOf } from './errors.js';
import { journalError, resolveCursor } from './journal.js';
import {
  type CursorPosition,
  cursorAfterCommit,
  cursorOf,
  parseCursor,
  START_CURSOR,
} from './journal-cursor.js';
import {
  DEFAULT_SCHEMA,
  prepareReadSql,
  type ReadValues,
  readInlineSql,
  readPreparedSql,
} from './journal-sql.js';
import type { Queryable } from './notifier.js';
import { intOption } from './options.js';
import { checkChannel } from './sql.js';
import type { ExpiredGap } from './types.js';

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

/** How often one read prepares its statement before it gives up (see readPrepared). */
const PREPARE_TRIES = 3;

/**
 * The read through the session's prepared statement: EXECUTE, and when the session does not
 * have it (a new connection: 26000), PREPARE and EXECUTE again. Two reads that both found it
 * missing both prepare it: the second's 42P05 (already prepared) is that success. A connection
 * replaced between the PREPARE and the EXECUTE lacks it once more: prepared again, up to
 * {@link PREPARE_TRIES} times.
 */
async function readPrepared(
  queryable: Queryable,
  schema: string,
  values: ReadValues,
): Promise<unknown> {
  const execute = readPreparedSql(schema, values);
  for (let tries = 1; ; tries++) {
    try {
      return await queryable.query(execute);
    } catch (error) {
      if (sqlStateOf(error) !== '26000' || tries > PREPARE_TRIES) throw error;
    }
    try {
      await queryable.query(prepareReadSql(schema));
    } catch (error) {
      if (sqlStateOf(error) !== '42P05') throw error;
    }
  }
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
      } else cursor = seqPart + (r.id as string);
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
