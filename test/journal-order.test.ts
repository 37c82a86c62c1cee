/**
 * Never skip, same order everywhere: transactions that commit out of insert order, the commit
 * lock that makes seq order visibility order, and sequence-numbered traffic from concurrent
 * writers (some rolled back) read live by a poller and replayed, counted for loss,
 * duplication and reordering, with the cursor property checked at many points.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type pg from 'pg';
import { resolveCursor } from '../src/journal.js';
import { type JournalRow, readJournal } from '../src/journal-read.js';
import { journalNames } from '../src/journal-sql.js';
import { appendDurable, appendDurableBatch } from '../src/journal-write.js';
import { waitFor } from './helpers/db.js';
import { connect, journalFixture, readAll } from './helpers/journal.js';

const { schema, pool } = journalFixture('ord', 6);

describe('journal order', () => {
  test('A inserts first and commits last, B commits in between: nobody skips A', async () => {
    const [a, b] = await Promise.all([connect(), connect()]);
    try {
      const start = await resolveCursor(pool, 'now', { schema });
      await a.query('BEGIN');
      await appendDurable(a, 'ab', 'A', schema);
      await b.query('BEGIN');
      await appendDurable(b, 'ab', 'B', schema);
      await b.query('COMMIT');
      // A live reader that has read B before A committed...
      const live = await readJournal(pool, { schema, after: start });
      assert.deepEqual(
        live.rows.map((r) => r.payload),
        ['B'],
      );
      assert.equal(live.caughtUp, true);
      await a.query('COMMIT');
      // ...still gets A, from B's cursor and from the page's `next` alike.
      for (const from of [live.rows[0]?.cursor, live.next]) {
        assert.deepEqual(
          (await readAll(pool, schema, from)).map((r) => r.payload),
          ['A'],
        );
      }
      // A full replay shows the same order: commit order, not insert order.
      const replay = await readAll(pool, schema, start);
      assert.deepEqual(
        replay.map((r) => r.payload),
        ['B', 'A'],
      );
      const ids = replay.map((r) => BigInt(r.cursor.slice(20)));
      assert.ok((ids[1] as bigint) < (ids[0] as bigint), 'A was inserted first');
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });

  test('a sequenced transaction holds back later ones until its commit is visible', async () => {
    const [t1, t2] = await Promise.all([connect(), connect()]);
    try {
      const start = await resolveCursor(pool, 'now', { schema });
      await t1.query('BEGIN');
      await appendDurable(t1, 'lock', 'T1', schema);
      // Fire the commit trigger now: T1 takes the commit lock and its seq, and stays open.
      await t1.query('SET CONSTRAINTS ALL IMMEDIATE');
      await t2.query('BEGIN');
      await appendDurable(t2, 'lock', 'T2', schema);
      const t2pid = (t2 as unknown as { processID: number }).processID;
      const t2commit = t2.query('COMMIT');
      await waitFor(
        async () =>
          (
            await pool.query(
              "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'advisory'",
              [t2pid],
            )
          ).rowCount === 1,
        { message: 'T2 waiting on the commit lock', timeoutMs: 10_000 },
      );
      assert.deepEqual(await readAll(pool, schema, start), []);
      await t1.query('COMMIT');
      await t2commit;
      assert.deepEqual(
        (await readAll(pool, schema, start)).map((r) => r.payload),
        ['T1', 'T2'],
      );
    } finally {
      await Promise.all([t1.end(), t2.end()]);
    }
  });

  test('functions with a SET clause and an early, rolled-back trigger firing still sequence once', async () => {
    const { q } = journalNames(schema);
    const client = await connect();
    try {
      const start = await resolveCursor(pool, 'now', { schema });
      // A SET clause undoes the transaction-local marker when the function returns, so the
      // trigger is queued again: the second firing must find the commit already numbered.
      await client.query(
        `CREATE FUNCTION ${q}.put(p text) RETURNS void LANGUAGE sql SET search_path = pg_catalog
         AS $$ INSERT INTO ${q}.journal (channel, payload) VALUES ('fn', p) $$`,
      );
      await client.query('BEGIN');
      await client.query(`SELECT ${q}.put('a')`);
      await client.query(`SELECT ${q}.put('b')`);
      await appendDurable(client, 'fn', 'c', schema);
      await client.query('COMMIT');
      // Fired early inside a savepoint that is rolled back: it fires again at COMMIT.
      await client.query('BEGIN');
      await appendDurable(client, 'fn', 'd', schema);
      await client.query('SAVEPOINT s');
      await client.query('SET CONSTRAINTS ALL IMMEDIATE');
      await client.query('ROLLBACK TO s');
      await client.query('COMMIT');
      const rows = await readAll(pool, schema, start);
      assert.deepEqual(
        rows.map((r) => r.payload),
        ['a', 'b', 'c', 'd'],
      );
      assert.equal(new Set(rows.slice(0, 3).map((r) => r.cursor.slice(0, 19))).size, 1);
      const orphans = await pool.query(
        `SELECT count(*)::int AS n FROM ${q}.journal j
         WHERE NOT EXISTS (SELECT 1 FROM ${q}.commits c WHERE c.xid = j.xid)`,
      );
      assert.equal(orphans.rows[0].n, 0);
    } finally {
      await client.end();
    }
  });

  test('concurrent writers with rollbacks: live poller and replay agree, nothing lost, duplicated or reordered', async () => {
    const WRITERS = 6;
    const TXNS = 40;
    const start = await resolveCursor(pool, 'now', { schema });
    const committed = new Set<string>();
    const rolledBack = new Set<string>();
    let writing = true;
    const clients = await Promise.all(Array.from({ length: WRITERS }, () => connect()));
    // Deterministic pseudo-randomness, so a failure replays the same mix.
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const writer = async (client: pg.Client, w: number) => {
      let k = 0;
      for (let t = 0; t < TXNS; t++) {
        const size = 1 + rand(4);
        const payloads = Array.from({ length: size }, () => `${w}:${k++}`);
        const rollback = rand(5) === 0;
        await client.query('BEGIN');
        if (size === 1) await appendDurable(client, `w${w % 2}`, payloads[0] as string, schema);
        else await appendDurableBatch(client, `w${w % 2}`, payloads, schema);
        // A round trip between insert and commit lets other writers' commits overtake.
        await client.query('SELECT 1');
        await client.query(rollback ? 'ROLLBACK' : 'COMMIT');
        for (const p of payloads) (rollback ? rolledBack : committed).add(p);
      }
    };
    const live: JournalRow[] = [];
    const poller = (async () => {
      let cursor = start;
      for (;;) {
        const done = !writing;
        const page = await readJournal(pool, { schema, after: cursor, limitRows: 5 });
        live.push(...page.rows);
        cursor = page.next;
        if (done && page.caughtUp) return;
      }
    })();
    try {
      await Promise.all(clients.map((c, w) => writer(c, w)));
    } finally {
      writing = false;
      await Promise.all(clients.map((c) => c.end()));
    }
    await poller;

    const seen = live.map((r) => r.payload);
    const counts = new Map<string, number>();
    for (const p of seen) counts.set(p, (counts.get(p) ?? 0) + 1);
    const lost = [...committed].filter((p) => !counts.has(p)).length;
    const duplicated = [...counts.values()].filter((n) => n > 1).length;
    const ghosts = seen.filter((p) => rolledBack.has(p)).length;
    let reordered = 0;
    const lastOf = new Map<string, number>();
    for (const p of seen) {
      const [w, k] = p.split(':');
      if ((lastOf.get(w as string) ?? -1) > Number(k)) reordered++;
      lastOf.set(w as string, Number(k));
    }
    assert.ok(rolledBack.size > 0, 'some transactions rolled back');
    assert.deepEqual(
      { lost, duplicated, ghosts, reordered, seen: seen.length },
      { lost: 0, duplicated: 0, ghosts: 0, reordered: 0, seen: committed.size },
    );
    // The trap was exercised: rows committed behind a higher row id, which a reader keeping
    // "after the last id I saw" would have skipped.
    let maxId = 0n;
    let behindId = 0;
    for (const r of live) {
      const id = BigInt(r.cursor.slice(20));
      if (id < maxId) behindId++;
      else maxId = id;
    }
    assert.ok(behindId > 0, 'some commits overtook earlier inserts');
    const cursors = live.map((r) => r.cursor);
    assert.deepEqual([...cursors].sort(), cursors, 'cursors ascend as strings');

    // A full replay, with another page size, is the live sequence exactly.
    const replay = await readAll(pool, schema, start, { limitRows: 1000 });
    assert.deepEqual(
      replay.map((r) => r.cursor),
      cursors,
    );
    // The property: after cursor(m_i), exactly m_(i+1)..m_k, in order, at many points.
    const points = new Set([0, 1, cursors.length - 2, cursors.length - 1]);
    for (let i = 0; i < 25; i++) points.add(rand(cursors.length));
    for (const i of points) {
      const rest = await readAll(pool, schema, cursors[i], { limitRows: 1 + rand(50) });
      assert.deepEqual(
        rest.map((r) => r.cursor),
        cursors.slice(i + 1),
        `after message ${i}`,
      );
    }
    // Per channel, the same property holds for a channel-filtered reader.
    const w0 = live.filter((r) => r.channel === 'w0').map((r) => r.cursor);
    assert.deepEqual(
      (await readAll(pool, schema, w0[3], { channels: ['w0'], limitRows: 7 })).map((r) => r.cursor),
      w0.slice(4),
    );
  });
});
