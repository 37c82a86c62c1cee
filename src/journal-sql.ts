/**
 * The SQL of durable channels: the versioned install script (what `installSchema()` runs and
 * `pgnotify setup --print` prints) and the statements that write, read and prune the journal.
 * Every name derived from the schema is quoted, so a hostile schema name is just a name.
 *
 * How the order is made (commit-time sequencing): a row is inserted in the sender's
 * transaction with that transaction's `xid8`. A deferred constraint trigger fires once per
 * transaction at COMMIT, takes a transaction-level advisory lock (one key per schema) and
 * records `(xid, seq = nextval(...))` in `commits`. The lock is released only after the
 * commit is visible (CommitTransaction runs ProcArrayEndTransaction before it releases
 * locks), so when a transaction holds seq N, every transaction with a smaller seq is already
 * visible to any snapshot that sees N: a reader ordering by (seq, row id) never has a row
 * appear behind its cursor. The same holds on a hot standby: commit records reach the WAL in
 * seq order, under the lock.
 *
 * What it costs and where it bends: durable commits of one schema serialize from the trigger to
 * the end of the commit (notifying commits already serialize on PostgreSQL's notify queue lock
 * for most of that span). `SET CONSTRAINTS ALL IMMEDIATE` fires the trigger early and holds
 * every later durable commit back until the transaction ends, as does a prepared (2PC)
 * transaction until COMMIT PREPARED. Publishers with `synchronous_commit = off` can lose their
 * newest commits in a server crash after readers saw them, and those positions can be handed
 * out again: a cursor kept outside the database (an SSE client's) could then skip. Keep it on.
 */
import { createHash } from 'node:crypto';
import { ErrorCode, PgNotifyError } from './errors.js';
import { quoteIdent, quoteLiteral } from './sql.js';

/** The schema `installSchema()` and every journal call use unless told otherwise. */
export const DEFAULT_SCHEMA = 'pgnotify';

/** Names derived from a schema name. */
export interface JournalNames {
  /** The schema name as given. */
  readonly schema: string;
  /** The schema as a quoted identifier. */
  readonly q: string;
  /** The channel every durable write wakes listeners on (one per schema, ≤ 63 bytes). */
  readonly wakeChannel: string;
  /** Advisory lock key (int8, decimal) that orders commits of this schema. */
  readonly commitLockKey: string;
  /** Advisory lock key that serializes installs and upgrades of this schema. */
  readonly installLockKey: string;
  /** The transaction-local setting that marks "this transaction is already sequenced". */
  readonly marker: string;
  /** The session's prepared statement of the read (see {@link readPreparedSql}). */
  readonly readStatement: string;
}

const namesCache = new Map<string, JournalNames>();

/** The names for `schema`; throws `PGNOTIFY_INVALID_OPTION` for a name PostgreSQL cannot hold. */
export function journalNames(schema: string = DEFAULT_SCHEMA): JournalNames {
  const cached = namesCache.get(schema);
  if (cached !== undefined) return cached;
  if (
    typeof schema !== 'string' ||
    schema === '' ||
    schema.includes('\0') ||
    !schema.isWellFormed() ||
    Buffer.byteLength(schema) > 63
  ) {
    throw new PgNotifyError(
      ErrorCode.INVALID_OPTION,
      `schema: expected a non-empty name of at most 63 UTF-8 bytes without NUL, got ${JSON.stringify(String(schema))}`,
    );
  }
  const hash = (salt: string): Buffer => createHash('sha256').update(`${salt}\0${schema}`).digest();
  const wake = `${schema}.wake`;
  const names: JournalNames = {
    schema,
    q: quoteIdent(schema),
    wakeChannel:
      Buffer.byteLength(wake) <= 63 ? wake : `pgnotify.wake.${hash('wake').toString('hex', 0, 8)}`,
    commitLockKey: hash('commit').readBigInt64BE(0).toString(),
    installLockKey: hash('install').readBigInt64BE(0).toString(),
    marker: `pgnotify.seq_${hash('marker').toString('hex', 0, 8)}`,
    readStatement: `pgnotify_read_${hash('read').toString('hex', 0, 8)}`,
  };
  if (namesCache.size < 64) namesCache.set(schema, names);
  return names;
}

/**
 * Statements with the schema filled in, built once per schema. Parameters are noted per
 * statement; cursors travel as (seq, id) bigints in decimal text.
 */
export interface JournalStatements {
  /** $1 channel, $2 payload, $3 wake channel. */
  readonly append: string;
  /**
   * Many rows in one statement, in array order. `text`: $2 a JSON array of JSON strings; `json`:
   * $2 a JSON array of JSON values whose text is stored verbatim. `one`: $1 the channel; `many`:
   * $1 a JSON array of channels parallel to $2. $3 the wake channel. One wake-up per distinct
   * channel (and PostgreSQL folds repeats across statements of one transaction). Never send an
   * empty array with `one`: it would wake listeners for nothing.
   */
  readonly appendBatch: {
    readonly text: { readonly one: string; readonly many: string };
    readonly json: { readonly one: string; readonly many: string };
  };
  /**
   * $1 seq, $2 id, $3 channels (text[] or null), $4 row limit, $5 byte budget, $6 most commits
   * looked at (≥ 1). Row kinds (`k`): 'h' head seq, 'e' the window's last commit when it is
   * full, 'w' prune watermarks (count in `payload`), null: journal rows, in journal order, each
   * `channel`, `seq`/`at` and `pid` null when equal to the previous row's; 'c' (no payload) when
   * the byte budget cut the page. readJournal sends it as {@link readInlineSql} (values written
   * in, with settings of its own), a listen-mode reader as {@link readPreparedSql} (this text,
   * prepared in its session by {@link prepareReadSql}); this form is also for readers of the SQL.
   */
  readonly read: string;
  /** The newest commit's seq (null when none). */
  readonly head: string;
  /** The schema's wake key (null before version 2; one statement for every version). */
  readonly wakeKey: string;
  /** $1 name. */
  readonly loadCursor: string;
  /** $1 name, $2 seq, $3 id: stores it unless the stored cursor is at or past it. */
  readonly saveCursor: string;
}

/** The values of one journal read (decimal text or numbers, channels or null for all). */
export interface ReadValues {
  readonly seq: string;
  readonly id: string;
  readonly channels: readonly string[] | null;
  readonly limitRows: number;
  readonly limitBytes: number;
  readonly window: number;
}

/** The read statement with parameter `n` written as `p(n)` (see JournalStatements.read). */
function readSql(q: string, p: (n: number) => string): string {
  return `SELECT 'h' AS k, NULL::text AS channel, (SELECT pg_catalog.max(seq) FROM ${q}.commits)::text AS seq,
  NULL::text AS id, NULL::text AS payload, NULL::integer AS pid, NULL::float8 AS at
UNION ALL
SELECT 'e', NULL, (SELECT ce.seq FROM ${q}.commits AS ce WHERE ce.seq >= ${p(1)}::bigint
  ORDER BY ce.seq OFFSET ${p(6)}::bigint - 1 LIMIT 1)::text, NULL, NULL, NULL, NULL
UNION ALL
SELECT 'w', w.channel, w.seq::text, w.id::text, w.count::text, NULL, pg_catalog.date_part('epoch', w.pruned_at) * 1000
  FROM ${q}.pruned AS w
  WHERE (w.seq, w.id) > (${p(1)}::bigint, ${p(2)}::bigint) AND (${p(3)}::text[] IS NULL OR w.channel = ANY (${p(3)}::text[]))
UNION ALL
SELECT CASE WHEN p.rn = 1 OR p.running <= ${p(5)}::bigint THEN NULL ELSE 'c' END,
  CASE WHEN p.rn = 1 OR p.channel <> p.prev_channel THEN p.channel END,
  CASE WHEN p.rn = 1 OR p.seq <> p.prev_seq THEN p.seq::text END,
  pg_catalog.lpad(p.id::text, 19, '0'),
  CASE WHEN p.rn = 1 OR p.running <= ${p(5)}::bigint THEN p.payload END,
  CASE WHEN p.rn = 1 OR p.pid <> p.prev_pid THEN p.pid END,
  CASE WHEN p.rn = 1 OR p.seq <> p.prev_seq THEN pg_catalog.date_part('epoch', p.committed_at) * 1000 END
FROM (
  SELECT q.*, pg_catalog.row_number() OVER w AS rn,
    pg_catalog.sum(pg_catalog.octet_length(q.payload)) OVER w AS running,
    pg_catalog.lag(q.seq) OVER w AS prev_seq, pg_catalog.lag(q.channel) OVER w AS prev_channel,
    pg_catalog.lag(q.pid) OVER w AS prev_pid
  FROM (
    SELECT c.seq, j.id, j.channel, j.payload, j.pid, c.committed_at
    FROM (SELECT cw.seq, cw.xid, cw.committed_at FROM ${q}.commits AS cw WHERE cw.seq >= ${p(1)}::bigint
      ORDER BY cw.seq LIMIT ${p(6)}::bigint) AS c CROSS JOIN LATERAL (
      SELECT r.id, r.channel, r.payload, r.pid FROM ${q}.journal AS r
      WHERE r.xid = c.xid AND r.id > (CASE WHEN c.seq = ${p(1)}::bigint THEN ${p(2)}::bigint ELSE 0::bigint END)
        AND (${p(3)}::text[] IS NULL OR r.channel = ANY (${p(3)}::text[]))
      ORDER BY r.id LIMIT ${p(4)}::bigint
    ) AS j
    ORDER BY c.seq, j.id LIMIT ${p(4)}::bigint
  ) AS q
  WINDOW w AS (ORDER BY q.seq, q.id)
) AS p
WHERE p.rn <= 2 OR p.running - pg_catalog.octet_length(p.payload) <= ${p(5)}::bigint`;
}

const DIGITS = /^\d{1,19}$/;

/**
 * Settings turned off for the read alone. Without statistics (a backlog written just before it is
 * read, before autovacuum analyzed it) the planner guesses ~1 000 rows per transaction: it then
 * fetches all of a transaction's remaining rows by bitmap and sorts them on every page of it
 * (O(transaction) per page), and the page's cost reaches JIT's threshold (compiling took ~180 ms
 * a read for a 2 ms query). Without both, the only sane path is left: ordered index scans.
 */
const READ_SETTINGS = ['jit', 'enable_bitmapscan'] as const;

/**
 * The read as one simple-query string with its values written in, {@link READ_SETTINGS} off for
 * this statement only: `set_config(…, true)` lasts until the end of the implicit transaction of
 * the string, and is set back at once for a caller inside a transaction of its own. One round
 * trip, and nothing outlives it, also through PgBouncer in transaction pooling.
 */
export function readInlineSql(schema: string, v: ReadValues): string {
  const values = readValues(v);
  return withReadSettings(readSql(journalNames(schema).q, (n) => values[n] as string));
}

/**
 * The read as an EXECUTE of the session's prepared statement ({@link prepareReadSql}), between
 * the same settings as {@link readInlineSql}: the statement is planned at EXECUTE (its first
 * custom plans, its generic plan, and again after an ANALYZE invalidated it), so always with
 * them. Planning was a quarter of a page's server time. For a session of pgnotify's own only
 * (a listener's connection in listen mode): behind a transaction pooler a statement prepared
 * on one server connection is missing on the next.
 */
export function readPreparedSql(schema: string, v: ReadValues): string {
  const values = readValues(v);
  const args = [1, 2, 3, 4, 5, 6].map((n) => values[n]).join(', ');
  return withReadSettings(`EXECUTE ${journalNames(schema).readStatement}(${args})`);
}

/** Prepares the read in the session under {@link JournalNames.readStatement} (see readPreparedSql). */
export function prepareReadSql(schema: string): string {
  const { q, readStatement } = journalNames(schema);
  const int8 = 'pg_catalog.int8';
  return `PREPARE ${readStatement} (${int8}, ${int8}, pg_catalog.text[], ${int8}, ${int8}, ${int8}) AS
${readSql(q, (n) => `$${n}`)}`;
}

/** The read's values written as literals (numbers checked to be decimal digits). */
function readValues(v: ReadValues): Record<number, string> {
  const num = (x: string | number): string => {
    const text = String(x);
    if (!DIGITS.test(text)) throw new RangeError(`expected decimal digits, got ${text}`);
    return `'${text}'`;
  };
  return {
    1: num(v.seq),
    2: num(v.id),
    3: v.channels === null ? 'NULL' : `ARRAY[${v.channels.map(quoteLiteral).join(', ')}]::text[]`,
    4: num(v.limitRows),
    5: num(v.limitBytes),
    6: num(v.window),
  };
}

/** `statement` between turning READ_SETTINGS off and back: three statements, one string. */
function withReadSettings(statement: string): string {
  const set = READ_SETTINGS.map(
    (name) =>
      `pg_catalog.set_config('pgnotify.${name}', pg_catalog.current_setting('${name}'), true), pg_catalog.set_config('${name}', 'off', true)`,
  );
  const reset = READ_SETTINGS.map(
    (name) =>
      `pg_catalog.set_config('${name}', pg_catalog.current_setting('pgnotify.${name}'), true)`,
  );
  return `SELECT ${set.join(',\n  ')};
${statement};
SELECT ${reset.join(',\n  ')}`;
}

const statementsCache = new Map<string, JournalStatements>();

/** The statements for `schema`. */
export function journalStatements(schema: string = DEFAULT_SCHEMA): JournalStatements {
  const cached = statementsCache.get(schema);
  if (cached !== undefined) return cached;
  const { q } = journalNames(schema);
  // No RETURNING: it needs SELECT on the journal, and publishers have only INSERT. A
  // data-modifying CTE runs to completion whether or not the query reads it.
  const wakeOne = 'SELECT pg_catalog.pg_notify($3, $1)';
  const wakeMany =
    'SELECT pg_catalog.count(pg_catalog.pg_notify($3, d.c)) AS n FROM (SELECT DISTINCT e.c' +
    ' FROM pg_catalog.json_array_elements_text($1::json) AS e(c)) AS d';
  const insert = (rows: string) =>
    `WITH ins AS (INSERT INTO ${q}.journal (channel, payload) ${rows})`;
  const textEl = 'pg_catalog.json_array_elements_text($2::json)';
  const jsonEl = 'pg_catalog.json_array_elements($2::json)';
  const one = (el: string, value: string) =>
    `${insert(`SELECT $1, ${value} FROM ${el} AS e(p)`)} ${wakeOne}`;
  const many = (el: string, value: string) =>
    `${insert(`SELECT e.c, ${value} FROM ROWS FROM (pg_catalog.json_array_elements_text($1::json), ${el}) AS e(c, p)`)} ${wakeMany}`;
  const statements: JournalStatements = {
    append: `${insert('VALUES ($1, $2)')} ${wakeOne}`,
    appendBatch: {
      text: { one: one(textEl, 'e.p'), many: many(textEl, 'e.p') },
      json: { one: one(jsonEl, 'e.p::text'), many: many(jsonEl, 'e.p::text') },
    },
    // One statement, so one snapshot: the head, the prune watermarks past the cursor and the
    // page agree. The rows come from a nested loop of index scans whatever the statistics say:
    // commits from the cursor's seq on (commits_pkey), and per commit its rows after the
    // cursor's id (journal_pkey, `xid = … AND id > …` both index conditions; ids are identity
    // values, so 0 is before every row), each at most a page. A plain join let the planner pick
    // a hash join over the whole journal (~350 ms a page on 1 000 000 rows) and rescan a large
    // transaction's rows on every page of it. At most $6 commits are looked at per page ('e'
    // names the last of them when the window is full): a channel with few rows among many
    // commits costs pages of bounded time, not one long scan, and the planner's cost stays
    // small enough that JIT (~180 ms a read when estimates inflate) never starts. The page keeps
    // rows while the running byte total stays within the budget, and always its first row, so a
    // row larger than the budget still advances the reader; the first row past the budget comes
    // back without its payload as 'c' (the page is not whole). Only returned rows are detoasted.
    // Per row, the client's decoding of each field dominates: a row carries its id (padded to 19
    // digits, as a cursor holds it: the server pads it cheaper than the client) and payload,
    // and channel, seq (with the commit time) and pid only where they change (lag() in the same
    // window, no second pass). No count(*) OVER () and no ORDER BY over the UNION: either holds
    // the whole page back before its first row goes out, where rows now stream from the window
    // in (seq, id) order while the client decodes. readJournal checks that order. A page of
    // 1 000 went from ~7 ms to ~4 ms (docs/benchmark.md, (j)).
    read: readSql(q, (n) => `$${n}`),
    head: `SELECT pg_catalog.max(seq) AS seq FROM ${q}.commits`,
    // to_jsonb: the column is absent before version 2, and then this reads null, not an error.
    wakeKey: `SELECT pg_catalog.to_jsonb(m) -> 'wake_key' AS key FROM ${q}.meta AS m`,
    loadCursor: `SELECT seq, id FROM ${q}.consumers WHERE name = $1`,
    saveCursor: `INSERT INTO ${q}.consumers AS c (name, seq, id) VALUES ($1, $2::bigint, $3::bigint)
  ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, id = excluded.id, updated_at = pg_catalog.now()
  WHERE (c.seq, c.id) < (excluded.seq, excluded.id)
  RETURNING seq`,
  };
  if (statementsCache.size < 64) statementsCache.set(schema, statements);
  return statements;
}
