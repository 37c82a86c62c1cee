/**
 * Looking after the journal: retention (`prune`), the doctor's view of it (`durableStatus`),
 * and whether LISTEN can work at all on a connection (`detectPooler`).
 */
import type pg from 'pg';
import { describe, ErrorCode, PgNotifyError } from './errors.js';
import { journalError } from './journal.js';
import { cursorAfterCommit, cursorOf } from './journal-cursor.js';
import { DEFAULT_SCHEMA, journalNames } from './journal-sql.js';
import type { Queryable } from './notifier.js';
import { intOption, msOption } from './options.js';

/** Options of {@link prune}. Give `maxAgeMs`, `maxPerChannel` or both. */
export interface PruneOptions {
  /** The journal's schema. Default `'pgnotify'`. */
  schema?: string;
  /** Delete messages committed longer ago than this many ms. */
  maxAgeMs?: number;
  /** Keep at most this many of the newest messages per channel. */
  maxPerChannel?: number;
  /** Rows per DELETE statement (each its own short transaction). Default 1 000. */
  batchRows?: number;
}

/** What {@link prune} removed. */
export interface PruneResult {
  /** Journal rows deleted. */
  readonly rows: number;
  /** Commit records deleted (those left without rows). */
  readonly commits: number;
  /** DELETE statements run. */
  readonly statements: number;
}

/**
 * Deletes old messages in small batches, each its own statement and transaction, oldest first
 * in journal order, so writers are never blocked for long. Per channel it records how far it
 * pruned: a reader whose cursor is behind that watermark gets an `'expired'` gap from
 * `readJournal`, never silence. Safe to run from several processes (rows are deleted once,
 * and each prune goes on until its rule finds nothing left). `maxAgeMs` counts from the start
 * of the call: rows that grow old while it runs are left for the next one.
 * @example
 * await prune(pool, { maxAgeMs: 7 * 24 * 3600_000 })
 */
export async function prune(queryable: Queryable, options: PruneOptions): Promise<PruneResult> {
  const schema = options.schema ?? DEFAULT_SCHEMA;
  const { q } = journalNames(schema);
  const batch = intOption('batchRows', options.batchRows, 1000, 1);
  const maxAgeMs =
    options.maxAgeMs === undefined ? undefined : intOption('maxAgeMs', options.maxAgeMs, 0, 0);
  const maxPer =
    options.maxPerChannel === undefined
      ? undefined
      : intOption('maxPerChannel', options.maxPerChannel, 0, 0);
  if (maxAgeMs === undefined && maxPer === undefined) {
    throw new PgNotifyError(
      ErrorCode.INVALID_OPTION,
      `prune: give maxAgeMs and/or maxPerChannel, got ${describe(options)}`,
    );
  }
  // Deletes the chosen victims, then moves each touched channel's watermark forward (never back).
  const tail = `, d AS (DELETE FROM ${q}.journal AS j USING v WHERE j.xid = v.xid AND j.id = v.id RETURNING v.channel, v.seq, j.id),
w AS (SELECT DISTINCT ON (channel) channel, seq, id, pg_catalog.count(*) OVER (PARTITION BY channel) AS n
  FROM d ORDER BY channel, seq DESC, id DESC),
u AS (INSERT INTO ${q}.pruned AS p (channel, seq, id, count) SELECT channel, seq, id, n FROM w
  ON CONFLICT (channel) DO UPDATE SET count = p.count + excluded.count, pruned_at = pg_catalog.now(),
    seq = CASE WHEN (excluded.seq, excluded.id) > (p.seq, p.id) THEN excluded.seq ELSE p.seq END,
    id = CASE WHEN (excluded.seq, excluded.id) > (p.seq, p.id) THEN excluded.id ELSE p.id END)
SELECT pg_catalog.count(*)::integer AS n, pg_catalog.max(seq) AS top FROM d`;
  const from = `FROM ${q}.commits AS c JOIN ${q}.journal AS j ON j.xid = c.xid`;
  const byAge = `WITH v AS (SELECT j.xid, j.id, j.channel, c.seq ${from}
  WHERE c.committed_at < $1::timestamptz ORDER BY c.seq, j.id LIMIT $2)${tail}`;
  const byCount = `WITH v AS (SELECT j.xid, j.id, j.channel, c.seq ${from}
  WHERE j.channel = $1 AND (c.seq, j.id) <= ($3::bigint, $4::bigint) ORDER BY c.seq, j.id LIMIT $2)${tail}`;
  let rows = 0;
  let statements = 0;
  let top = '0';
  const run = async (text: string, values: unknown[]): Promise<number> => {
    const res = (await queryable.query(text, values)) as {
      rows: { n: number; top: string | null }[];
    };
    statements++;
    const r = res.rows[0];
    if (r?.top != null && BigInt(r.top) > BigInt(top)) top = r.top;
    rows += r?.n ?? 0;
    return r?.n ?? 0;
  };
  // Each rule's victims are fixed when it starts (a cutoff time, a cut position), and a rule
  // goes on until a batch finds none: a batch comes back short when another prune running at
  // the same time deleted rows it had chosen, which is no sign that nothing is left.
  try {
    if (maxAgeMs !== undefined) {
      const cutoff = (await queryable.query(
        `SELECT pg_catalog.to_char((pg_catalog.now() - $1::bigint * interval '1 millisecond')
  AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t`,
        [maxAgeMs],
      )) as { rows: { t: string }[] };
      const t = cutoff.rows[0]?.t;
      while ((await run(byAge, [t, batch])) > 0);
    }
    if (maxPer !== undefined) {
      const over = (await queryable.query(
        `SELECT channel FROM ${q}.journal GROUP BY channel HAVING pg_catalog.count(*) > $1`,
        [maxPer],
      )) as { rows: { channel: string }[] };
      for (const { channel } of over.rows) {
        // The newest row to delete: the (maxPer + 1)-th newest in journal order.
        const cut = (await queryable.query(
          `SELECT c.seq, j.id ${from} WHERE j.channel = $1 ORDER BY c.seq DESC, j.id DESC OFFSET $2 LIMIT 1`,
          [channel, maxPer],
        )) as { rows: { seq: string; id: string }[] };
        const at = cut.rows[0];
        if (at === undefined) continue;
        while ((await run(byCount, [channel, batch, at.seq, at.id])) > 0);
      }
    }
    // Commit records whose rows are all gone, except the newest (it marks the head for 'now').
    let commits = 0;
    for (;;) {
      const res = (await queryable.query(
        `DELETE FROM ${q}.commits WHERE seq IN (SELECT c.seq FROM ${q}.commits AS c
  WHERE c.seq <= $1::bigint AND c.seq < (SELECT pg_catalog.max(seq) FROM ${q}.commits)
    AND NOT EXISTS (SELECT 1 FROM ${q}.journal AS j WHERE j.xid = c.xid) ORDER BY c.seq LIMIT $2)`,
        [top, batch],
      )) as { rowCount: number | null };
      statements++;
      commits += res.rowCount ?? 0;
      if ((res.rowCount ?? 0) === 0) break;
    }
    return { rows, commits, statements };
  } catch (error) {
    throw journalError(error, 'pruning the journal failed', schema);
  }
}

/** One named consumer as the doctor shows it. */
export interface ConsumerStatus {
  readonly name: string;
  readonly cursor: string;
  /** Commits (transactions) behind the head; an upper bound, as rolled-back ones leave holes. */
  readonly lag: number;
  /** When its cursor last moved (ms since the epoch). */
  readonly updatedAt: number;
}

/** The journal as `pgnotify doctor` reports it. */
export interface DurableStatus {
  readonly schema: string;
  /** Whether the journal schema is installed. The other fields are empty when not. */
  readonly installed: boolean;
  /** Its version (0 when not installed). */
  readonly version: number;
  /** Journal rows kept. */
  readonly rows: number;
  /** The cursor of the oldest kept row, undefined when empty. */
  readonly oldestCursor: string | undefined;
  /** The cursor `'now'` resolves to, undefined when nothing was ever committed. */
  readonly headCursor: string | undefined;
  /** The channel durable writes wake listeners on. */
  readonly wakeChannel: string;
  readonly consumers: readonly ConsumerStatus[];
}

/**
 * Reports whether the journal is installed, its version, size, oldest and newest positions and
 * every named consumer's lag. Counts rows exactly (a sequential scan; meant for doctor, not for
 * a hot path).
 */
export async function durableStatus(
  queryable: Queryable,
  schema: string = DEFAULT_SCHEMA,
): Promise<DurableStatus> {
  const { q, wakeChannel } = journalNames(schema);
  const empty = {
    schema,
    installed: false,
    version: 0,
    rows: 0,
    oldestCursor: undefined,
    headCursor: undefined,
    wakeChannel,
    consumers: [],
  };
  try {
    const found = (await queryable.query('SELECT pg_catalog.to_regclass($1) IS NOT NULL AS ok', [
      `${q}.meta`,
    ])) as { rows: { ok: boolean }[] };
    if (found.rows[0]?.ok !== true) return empty;
    const meta = (await queryable.query(`SELECT version FROM ${q}.meta`)) as {
      rows: { version: number }[];
    };
    const version = meta.rows[0]?.version ?? 0;
    if (version < 1) return { ...empty, installed: false, version };
    const res = (await queryable.query(
      `SELECT (SELECT pg_catalog.count(*) FROM ${q}.journal)::float8 AS rows,
  (SELECT pg_catalog.max(seq) FROM ${q}.commits) AS head,
  (SELECT ARRAY[c.seq, j.id] FROM ${q}.commits AS c JOIN ${q}.journal AS j ON j.xid = c.xid
    ORDER BY c.seq, j.id LIMIT 1) AS oldest`,
    )) as { rows: { rows: number; head: string | null; oldest: string[] | null }[] };
    const r = res.rows[0];
    const head = r?.head ?? null;
    const consumers = (await queryable.query(
      `SELECT name, seq, id, pg_catalog.date_part('epoch', updated_at) * 1000 AS at FROM ${q}.consumers ORDER BY name`,
    )) as { rows: { name: string; seq: string; id: string; at: number }[] };
    return {
      schema,
      installed: true,
      version,
      rows: r?.rows ?? 0,
      oldestCursor:
        r?.oldest == null ? undefined : cursorOf(String(r.oldest[0]), String(r.oldest[1])),
      headCursor: head === null ? undefined : cursorAfterCommit(head),
      wakeChannel,
      consumers: consumers.rows.map((c) => ({
        name: c.name,
        cursor: cursorOf(c.seq, c.id),
        lag: head === null ? 0 : Math.max(0, Number(BigInt(head) - BigInt(c.seq))),
        updatedAt: c.at,
      })),
    };
  } catch (error) {
    throw journalError(error, 'reading the journal status failed', schema);
  }
}

/** What {@link detectPooler} found. */
export interface PoolerReport {
  /**
   * Whether a pooler stands between the client and the server: the backend pid the server
   * reports differs from the one the connection was given at startup (PgBouncer hands out its
   * own cancel keys). A plain TCP proxy is not a pooler and is not flagged.
   */
  readonly pooler: boolean;
  /** Whether a notification sent from another connection reached this LISTENing one in time. */
  readonly listenWorks: boolean;
  /** `'listen'` when LISTEN delivers, `'poll'` when durable subscriptions must poll the journal. */
  readonly mode: 'listen' | 'poll';
}

/**
 * Finds out whether LISTEN works through `client`'s connection: it LISTENs on a private
 * channel, sends nothing more, and `sender` (another connection, or a pool) notifies it. Through
 * PgBouncer in transaction mode the LISTEN lands on a server connection that goes back to the
 * pool when its statement ends, so nothing ever arrives: use poll mode there. Resolves within
 * about `timeoutMs` (default 2 000). `client` is left listening to nothing.
 */
export async function detectPooler(
  client: pg.Client | pg.PoolClient,
  sender: Queryable,
  options: { timeoutMs?: number } = {},
): Promise<PoolerReport> {
  try {
    return await probe(client, sender, msOption('timeoutMs', options.timeoutMs, 2000, 1));
  } catch (error) {
    if (error instanceof PgNotifyError) throw error;
    throw new PgNotifyError(
      ErrorCode.CONNECTION_FAILED,
      `the LISTEN probe failed: ${(error as Error).message}`,
      { cause: error, retryable: true },
    );
  }
}

async function probe(
  client: pg.Client | pg.PoolClient,
  sender: Queryable,
  timeoutMs: number,
): Promise<PoolerReport> {
  const given = (client as unknown as { processID?: number | null }).processID ?? null;
  const pidRes = (await client.query('SELECT pg_catalog.pg_backend_pid() AS pid')) as {
    rows: { pid: number }[];
  };
  const pooler = given !== null && pidRes.rows[0]?.pid !== given;
  const channel = `pgnotify.probe.${process.pid}.${Math.random().toString(36).slice(2, 10)}`;
  let onNotification: ((m: pg.Notification) => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const arrived = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
    onNotification = (m) => {
      if (m.channel === channel) resolve(true);
    };
    client.on('notification', onNotification);
  });
  try {
    await client.query(`LISTEN "${channel}"`);
    await sender.query('SELECT pg_catalog.pg_notify($1, $2)', [channel, 'probe']);
    const listenWorks = await arrived;
    return { pooler, listenWorks, mode: listenWorks ? 'listen' : 'poll' };
  } finally {
    clearTimeout(timer);
    if (onNotification !== undefined) client.off('notification', onNotification);
    await client.query(`UNLISTEN "${channel}"`).catch(() => undefined);
  }
}
