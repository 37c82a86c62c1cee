/**
 * The journal read's plan and paging on a real server: index conditions only (never a scan of
 * the journal, never a large transaction's rows rescanned per page), cursors on a commit boundary
 * ('now', bigint ids), the commit window that bounds a page's work, and JIT kept off for the
 * read alone.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import { installSchema, resolveCursor } from '../src/journal.js';
import { cursorAfterCommit, START_CURSOR } from '../src/journal-cursor.js';
import { readJournal, readPage } from '../src/journal-read.js';
import { journalNames, readInlineSql, readPreparedSql } from '../src/journal-sql.js';
import { appendDurable, appendDurableBatch } from '../src/journal-write.js';
import { QueryQueue } from '../src/query-queue.js';
import { connect, dropSchema, readAll, testPool, uniqueSchema } from './helpers/journal.js';

const schema = uniqueSchema('jr');
let pool: pg.Pool;

before(async () => {
  pool = testPool();
  await installSchema({ client: pool, schema });
});

after(async () => {
  await dropSchema(pool, schema);
  await pool.end();
});

/** The plan of one read, as EXPLAIN ANALYZE prints it. */
async function plan(values: Parameters<typeof readInlineSql>[1]): Promise<string> {
  const sql = readInlineSql(schema, values).replace(
    /;\nSELECT 'h'/,
    ";\nEXPLAIN (ANALYZE, COSTS OFF) SELECT 'h'",
  );
  const results = (await pool.query(sql)) as unknown as { rows: Record<string, string>[] }[];
  return (results[1]?.rows ?? []).map((r) => Object.values(r)[0]).join('\n');
}

describe('journal read', () => {
  test("'now' and a commit boundary read what commits next", async () => {
    await appendDurable(pool, 'b', 'before', schema);
    const now = await resolveCursor(pool, 'now', { schema });
    assert.match(now, /-9223372036854775807$/);
    await appendDurable(pool, 'b', 'one', schema);
    await appendDurable(pool, 'b', 'two', schema);
    const page = await readJournal(pool, { schema, after: now });
    assert.deepEqual(
      page.rows.map((r) => r.payload),
      ['one', 'two'],
    );
    assert.equal(page.caughtUp, true);
    const seq = (page.rows[0]?.cursor ?? '').slice(0, 19);
    const rest = await readJournal(pool, { schema, after: cursorAfterCommit(seq) });
    assert.deepEqual(
      rest.rows.map((r) => r.payload),
      ['two'],
    );
  });

  test('a large transaction is read in pages by index conditions, each row once, in order', async () => {
    const from = await resolveCursor(pool, 'now', { schema });
    await appendDurable(pool, 'big', 'first', schema);
    const payloads = Array.from({ length: 5000 }, (_, i) => `r${i}`);
    await appendDurableBatch(pool, 'big', payloads, schema);
    await appendDurable(pool, 'big', 'last', schema);
    const pages: number[] = [];
    const rows: string[] = [];
    let cursor = from;
    let middle: string | undefined;
    for (;;) {
      const page = await readJournal(pool, { schema, after: cursor, limitRows: 1000 });
      pages.push(page.rows.length);
      rows.push(...page.rows.map((r) => r.payload));
      if (rows.length === 2000) middle = page.next;
      cursor = page.next;
      if (page.caughtUp) break;
    }
    assert.deepEqual(rows, ['first', ...payloads, 'last']);
    assert.ok(pages.every((n) => n <= 1000));
    assert.ok(middle !== undefined);
    const [seq, id] = middle.split('-').map((part) => BigInt(part).toString()) as [string, string];
    const text = await plan({
      seq,
      id,
      channels: ['big'],
      limitRows: 1000,
      limitBytes: 1 << 22,
      window: 1000,
    });
    assert.doesNotMatch(text, /Seq Scan on journal|Hash Join|JIT/);
    assert.match(text, /Index Cond: \(\(xid = cw\.xid\) AND \(id > CASE/);
    // Only the page's rows (and the next one) were fetched from the large transaction.
    const fetched =
      /Index Scan using journal_pkey on journal r \(actual .* rows=([\d.]+) loops=(\d+)/.exec(text);
    // PostgreSQL 18 prints the average rows per loop with decimals (rows=500.50 loops=2).
    assert.ok(
      fetched !== null && Math.round(Number(fetched[1]) * Number(fetched[2])) <= 1001,
      text,
    );
  });

  test('a page looks at a bounded number of commits: a rare channel advances without skipping', async () => {
    const from = await resolveCursor(pool, 'now', { schema });
    // 1 500 commits of another channel, then one row on the rare one.
    const writer = await connect();
    try {
      await writer.query('SET synchronous_commit = off');
      await writer.query(`DO $$ BEGIN FOR i IN 1..1500 LOOP
        INSERT INTO ${schema}.journal (channel, payload) VALUES ('noise', i::text); COMMIT;
      END LOOP; END $$`);
    } finally {
      await writer.end();
    }
    await appendDurable(pool, 'rare', 'found', schema);
    const first = await readJournal(pool, { schema, after: from, channels: ['rare'] });
    assert.equal(first.rows.length, 0);
    assert.equal(first.caughtUp, false);
    assert.ok(first.next > from);
    const all = await readAll(pool, schema, from, { channels: ['rare'] });
    assert.deepEqual(
      all.map((r) => r.payload),
      ['found'],
    );
    const everything = await readAll(pool, schema, from);
    assert.equal(everything.length, 1501);
    assert.deepEqual(
      everything.slice(0, 3).map((r) => r.payload),
      ['1', '2', '3'],
    );
  });

  test('fields sent once per run (channel, pid, commit) are right on every row of every page', async () => {
    const from = await resolveCursor(pool, 'now', { schema });
    const other = await connect();
    try {
      // Channels and pids that change inside a commit and repeat across commits.
      await appendDurableBatch(pool, ['x', 'x', 'y', 'x'], ['1', '2', '3', '4'], schema);
      await appendDurableBatch(other, ['x', 'x'], ['5', '6'], schema);
      await pool.query(
        `INSERT INTO ${schema}.journal (channel, payload, pid) VALUES ('y', '7', 1), ('y', '8', 1), ('x', '9', 2)`,
      );
      await appendDurableBatch(pool, ['y', 'y'], ['10', '11'], schema);
    } finally {
      await other.end();
    }
    const [seq, id] = from.split('-').map((part) => BigInt(part).toString()) as [string, string];
    const { rows: expected } = await pool.query<{
      cursor: string;
      channel: string;
      payload: string;
      pid: number;
      at: number;
    }>(
      `SELECT pg_catalog.lpad(c.seq::text, 19, '0') || '-' || pg_catalog.lpad(j.id::text, 19, '0') AS cursor,
        j.channel, j.payload, j.pid, pg_catalog.date_part('epoch', c.committed_at) * 1000 AS at
      FROM ${schema}.journal AS j JOIN ${schema}.commits AS c USING (xid)
      WHERE (c.seq, j.id) > ($1::bigint, $2::bigint) ORDER BY c.seq, j.id`,
      [seq, id],
    );
    const want = expected.map(({ at, ...row }) => ({ ...row, committedAt: at }));
    assert.equal(want.length, 11);
    assert.deepEqual(new Set(want.map((r) => r.pid)).size, 4);
    // Whole, then in pages of every size (each page starts mid-run: its first row says all).
    for (const limitRows of [1000, 1, 2, 3, 5]) {
      const got = await readAll(pool, schema, from, { limitRows });
      assert.deepEqual(
        got.map((r) => ({ ...r })),
        want,
        `limitRows ${limitRows}`,
      );
    }
    // Cut by the byte budget (2 bytes: the page ends before the first two-digit payload).
    const cut = await readJournal(pool, { schema, after: from, limitBytes: 2 });
    assert.deepEqual(
      cut.rows.map((r) => r.payload),
      ['1', '2'],
    );
    assert.equal(cut.caughtUp, false);
    assert.equal(cut.next, cut.rows[1]?.cursor);
    const byBytes = await readAll(pool, schema, from, { limitBytes: 3 });
    assert.deepEqual(
      byBytes.map((r) => ({ ...r })),
      want,
    );
    const onlyY = await readAll(pool, schema, from, { channels: ['y'], limitRows: 2 });
    assert.deepEqual(
      onlyY.map((r) => ({ ...r })),
      want.filter((r) => r.channel === 'y'),
    );
  });

  test('JIT is off for the read alone: a caller inside a transaction keeps its setting', async () => {
    const client = await connect();
    try {
      await client.query('BEGIN');
      await client.query('SET LOCAL jit = on');
      await readJournal(client, { schema, after: START_CURSOR, limitRows: 10 });
      const { rows } = await client.query<{ jit: string }>("SELECT current_setting('jit') AS jit");
      assert.equal(rows[0]?.jit, 'on');
      await client.query('COMMIT');
    } finally {
      await client.end();
    }
  });

  test("a session's prepared read: the inline read's pages, prepared once, again when lost", async () => {
    const client = await connect();
    // As on a listener's connection: statements one at a time, as its query queue runs them.
    const queue = new QueryQueue(client);
    const session = {
      query: (text: string, values?: unknown[]) => queue.run('data', text, values),
    };
    const name = journalNames(schema).readStatement;
    const statements = async () =>
      (
        await client.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = $1',
          [name],
        )
      ).rows[0]?.n;
    try {
      const from = await resolveCursor(pool, 'now', { schema });
      await appendDurableBatch(pool, ['p', 'q', 'p'], ['1', '2', '3'], schema);
      await appendDurable(pool, 'q', '4', schema);
      await appendDurableBatch(pool, 'p', ['5', '6', '7'], schema);
      const want = await readAll(pool, schema, from, { limitRows: 2 });
      const prepared = async (channels?: string[]) => {
        const rows = [];
        let after = from;
        for (;;) {
          const page = await readPage(session, { schema, after, limitRows: 2, channels }, true);
          rows.push(...page.rows);
          after = page.next;
          if (page.caughtUp) return rows;
        }
      };
      // Two first reads at once on a session without the statement: both prepare it.
      const [all, onlyP] = await Promise.all([prepared(), prepared(['p'])]);
      assert.deepEqual(all, want);
      assert.deepEqual(
        onlyP,
        want.filter((r) => r.channel === 'p'),
      );
      assert.equal(await statements(), 1);
      // Planned with JIT and bitmap scans off whatever the session's settings say.
      await client.query('SET jit = on; SET jit_above_cost = 0; SET enable_bitmapscan = on');
      for (let i = 0; i < 7; i++) assert.deepEqual(await prepared(), want);
      const values = {
        seq: '0',
        id: '0',
        channels: null,
        limitRows: 10,
        limitBytes: 1 << 20,
        window: 1000,
      };
      const explained = (await client.query(
        readPreparedSql(schema, values).replace('EXECUTE', 'EXPLAIN (ANALYZE, COSTS OFF) EXECUTE'),
      )) as unknown as { rows: Record<string, string>[] }[];
      const plan = (explained[1]?.rows ?? []).map((r) => Object.values(r)[0]).join('\n');
      assert.doesNotMatch(plan, /JIT|Bitmap/);
      const { rows } = await client.query<{ jit: string }>("SELECT current_setting('jit') AS jit");
      assert.equal(rows[0]?.jit, 'on');
      // A session that lost it (DEALLOCATE, DISCARD ALL) prepares it again.
      await client.query('DEALLOCATE ALL');
      assert.deepEqual(await prepared(), want);
      assert.equal(await statements(), 1);
    } finally {
      await client.end();
    }
  });

  test('a prepared read of a dropped schema fails with PGNOTIFY_SCHEMA_MISSING', async () => {
    const gone = uniqueSchema('jrd');
    await installSchema({ client: pool, schema: gone });
    const client = await connect();
    try {
      const read = () => readPage(client, { schema: gone, after: START_CURSOR }, true);
      await read();
      await dropSchema(pool, gone);
      await assert.rejects(read(), { code: 'PGNOTIFY_SCHEMA_MISSING' });
    } finally {
      await client.end();
      await dropSchema(pool, gone);
    }
  });
});
