/**
 * The durable journal on a real server: install (idempotent, concurrent, upgrade, hostile schema
 * names), writes with their wake-up, payload rules, byte-budget paging, cursors, consumers,
 * retention with expired gaps, and the doctor's status.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import { loadWakeKey, parseWake } from '../src/durable-wake.js';
import { ErrorCode, type PgNotifyError } from '../src/errors.js';
import {
  installSchema,
  loadCursor,
  resolveCursor,
  saveCursor,
  wakeChannel,
} from '../src/journal.js';
import { durableStatus, prune } from '../src/journal-admin.js';
import { compareCursors, parseCursor, START_CURSOR } from '../src/journal-cursor.js';
import { installSql, MIGRATIONS, SCHEMA_VERSION } from '../src/journal-install.js';
import { readJournal } from '../src/journal-read.js';
import { journalNames } from '../src/journal-sql.js';
import {
  appendDurable,
  appendDurableBatch,
  MAX_DURABLE_PAYLOAD_BYTES,
  notifyDurable,
} from '../src/journal-write.js';
import { isCode } from './helpers/assert.js';
import { databaseUrl, onceEvent } from './helpers/db.js';
import { connect, dropSchema, readAll, testPool, uniqueSchema } from './helpers/journal.js';

const schema = uniqueSchema('j');
const made: string[] = [schema];
let pool: pg.Pool;

before(async () => {
  pool = testPool();
  await installSchema({ client: pool, schema });
});

after(async () => {
  for (const s of made) await dropSchema(pool, s);
  await pool.end();
});

/** A queryable that fails the test if anything reaches the server. */
const untouched = {
  query(): Promise<never> {
    throw new Error('nothing should reach the server');
  },
};

describe('installSchema', () => {
  test('installs once, then changes nothing', async () => {
    const s = uniqueSchema('inst');
    made.push(s);
    assert.deepEqual(await installSchema({ connection: databaseUrl(), schema: s }), {
      schema: s,
      previousVersion: 0,
      version: SCHEMA_VERSION,
    });
    const objects = async () =>
      (
        await pool.query(
          `SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = $1 ORDER BY 1`,
          [s],
        )
      ).rows;
    const first = await objects();
    assert.deepEqual(await installSchema({ client: pool, schema: s }), {
      schema: s,
      previousVersion: SCHEMA_VERSION,
      version: SCHEMA_VERSION,
    });
    assert.deepEqual(await objects(), first);
  });

  test('five processes installing at once all succeed, once', async () => {
    const s = uniqueSchema('conc');
    made.push(s);
    const clients = await Promise.all([1, 2, 3, 4, 5].map(() => connect()));
    try {
      const results = await Promise.all(
        clients.map((client) => installSchema({ client, schema: s })),
      );
      assert.equal(results.filter((r) => r.previousVersion === 0).length, 1);
      assert.ok(results.every((r) => r.version === SCHEMA_VERSION));
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  test('upgrades an older version step by step, keeping its data', async () => {
    const s = uniqueSchema('upg');
    made.push(s);
    await pool.query(installSql(s, MIGRATIONS.slice(0, 1), { forClient: true }));
    await appendDurable(pool, 'kept', 'before the upgrade', s);
    assert.deepEqual(await installSchema({ client: pool, schema: s }), {
      schema: s,
      previousVersion: 1,
      version: SCHEMA_VERSION,
    });
    await appendDurable(pool, 'kept', 'after the upgrade', s);
    const next = {
      version: SCHEMA_VERSION + 1,
      summary: 'test step',
      sql: ({ q }: { q: string }) => `ALTER TABLE ${q}.journal ADD COLUMN test_v2 text;`,
    };
    const [r1, r2] = (await pool.query(
      installSql(s, [...MIGRATIONS, next], { forClient: true }),
    )) as unknown as pg.QueryResult[];
    assert.ok(r1 !== undefined && r2 !== undefined);
    const version = await pool.query(`SELECT version FROM ${journalNames(s).q}.meta`);
    assert.equal(version.rows[0].version, SCHEMA_VERSION + 1);
    const col = await pool.query(
      `SELECT 1 FROM information_schema.columns WHERE table_schema = $1 AND column_name = 'test_v2'`,
      [s],
    );
    assert.equal(col.rowCount, 1);
    // Running the library's own (older) script on a newer schema leaves it alone.
    assert.deepEqual(await installSchema({ client: pool, schema: s }), {
      schema: s,
      previousVersion: SCHEMA_VERSION + 1,
      version: SCHEMA_VERSION + 1,
    });
    assert.deepEqual(
      (await readAll(pool, s)).map((r) => r.payload),
      ['before the upgrade', 'after the upgrade'],
    );
  });

  test('a hostile schema name is just a name', async () => {
    const s = `we"ird'$pgnotify$ \\ name;\n DROP TABLE x; --`;
    made.push(s);
    await installSchema({ client: pool, schema: s });
    await appendDurable(pool, 'c', 'p', s);
    assert.deepEqual(
      (await readAll(pool, s)).map((r) => r.payload),
      ['p'],
    );
    assert.ok(Buffer.byteLength(journalNames(s).wakeChannel) <= 63);
    assert.ok(!installSql(s).split('\n')[0]?.includes('DROP'));
  });

  test('refuses both connection and client, and reports a failed connect', async () => {
    await assert.rejects(
      installSchema({ client: pool, connection: databaseUrl(), schema }),
      isCode(ErrorCode.INVALID_OPTION),
    );
    await assert.rejects(
      installSchema({ connection: 'postgres://nobody@127.0.0.1:1/none', schema }),
      (e: Error) => isCode(ErrorCode.CONNECTION_FAILED)(e) && (e as PgNotifyError).retryable,
    );
    assert.equal(wakeChannel(), 'pgnotify.wake');
    assert.equal(wakeChannel(schema), `${schema}.wake`);
  });

  test('a client passed where options go is refused and left working', async () => {
    // Read as options, the client's live `connection` was copied into a new client's config,
    // which wrote a startup message into this client's socket: the server ended its session.
    const client = await connect();
    try {
      await assert.rejects(installSchema(client as never), isCode(ErrorCode.INVALID_OPTION));
      assert.equal((await client.query('SELECT 1 AS one')).rows[0]?.one, 1);
    } finally {
      await client.end();
    }
  });

  test('a missing schema is PGNOTIFY_SCHEMA_MISSING with the fix', async () => {
    const s = uniqueSchema('none');
    await assert.rejects(readJournal(pool, { schema: s, after: 'start' }), (e: Error) => {
      assert.ok(isCode(ErrorCode.SCHEMA_MISSING)(e));
      assert.match(e.message, /pgnotify setup/);
      return true;
    });
    await assert.rejects(appendDurable(pool, 'c', 'p', s), isCode(ErrorCode.SCHEMA_MISSING));
    assert.equal((await durableStatus(pool, s)).installed, false);
  });
});

describe('writes', () => {
  test('a row is visible on commit only, with its sender pid; wake-ups fold per channel', async () => {
    const client = await connect();
    const listener = await connect();
    try {
      const wakes: string[] = [];
      listener.on('notification', (m) => {
        if (m.channel === journalNames(schema).wakeChannel) wakes.push(m.payload ?? '');
      });
      await listener.query(`LISTEN "${journalNames(schema).wakeChannel}"`);
      const head = await resolveCursor(pool, 'now', { schema });
      await client.query('BEGIN');
      await notifyDurable(client, 'w1', { n: 1 }, { schema });
      await appendDurable(client, 'w1', 'two', schema);
      await appendDurable(client, 'w2', 'three', schema);
      assert.equal((await readAll(pool, schema, head)).length, 0, 'not visible before COMMIT');
      const woken = onceEvent(listener, 'notification');
      await client.query('COMMIT');
      await woken;
      // The other wakes follow the first in the same message train; a round trip flushes them.
      await listener.query('SELECT 1');
      // One per channel from the write statements, then the commit's own (signed, with its rows).
      const commits = wakes.filter((w) => /^[0-9a-f]{32}\[/.test(w));
      assert.deepEqual(wakes.filter((w) => !commits.includes(w)).sort(), ['w1', 'w2']);
      assert.equal(commits.length, 1);
      const rows = await readAll(pool, schema, head);
      const wake = parseWake(commits[0] as string, await loadWakeKey(pool, schema));
      assert.deepEqual(wake, {
        kind: 'commit',
        seq: BigInt(rows[0]?.cursor.slice(0, 19) ?? ''),
        rows,
      });
      assert.deepEqual(
        rows.map((r) => [r.channel, r.payload]),
        [
          ['w1', '{"n":1}'],
          ['w1', 'two'],
          ['w2', 'three'],
        ],
      );
      const pid = (client as unknown as { processID: number }).processID;
      assert.ok(rows.every((r) => r.pid === pid));
      assert.ok(rows.every((r) => Math.abs(r.committedAt - Date.now()) < 60_000));
      assert.equal(new Set(rows.map((r) => r.cursor.slice(0, 19))).size, 1, 'one commit seq');

      await client.query('BEGIN');
      await appendDurable(client, 'w1', 'rolled back', schema);
      await client.query('ROLLBACK');
      await client.query('BEGIN');
      await client.query('SAVEPOINT s');
      await appendDurable(client, 'w1', 'savepoint rolled back', schema);
      await client.query('ROLLBACK TO s');
      await appendDurable(client, 'w1', 'after savepoint', schema);
      await client.query('COMMIT');
      const later = await readAll(pool, schema, rows.at(-1)?.cursor);
      assert.deepEqual(
        later.map((r) => r.payload),
        ['after savepoint'],
      );
    } finally {
      await client.end();
      await listener.end();
    }
  });

  test('a batch keeps array order and duplicates, on one channel or many', async () => {
    const head = await resolveCursor(pool, 'now', { schema });
    const payloads = Array.from({ length: 1000 }, (_, i) => (i % 10 === 0 ? 'dup' : `p${i}`));
    await appendDurableBatch(pool, 'batch', payloads, schema);
    await appendDurableBatch(pool, ['b1', 'b2', 'b1'], ['x', 'y', 'x'], schema);
    await appendDurableBatch(pool, 'batch', [], schema);
    const rows = await readAll(pool, schema, head, { limitRows: 333 });
    assert.deepEqual(
      rows.map((r) => r.payload),
      [...payloads, 'x', 'y', 'x'],
    );
    assert.deepEqual(
      rows.slice(1000).map((r) => r.channel),
      ['b1', 'b2', 'b1'],
    );
  });

  test('payloads are checked before anything is sent', async () => {
    await assert.rejects(appendDurable(untouched, 'c', 'a\0b'), isCode(ErrorCode.INVALID_PAYLOAD));
    await assert.rejects(
      appendDurable(untouched, 'c', 'a\ud800'),
      isCode(ErrorCode.INVALID_PAYLOAD),
    );
    await assert.rejects(
      appendDurable(untouched, 'c', 'a'.repeat(MAX_DURABLE_PAYLOAD_BYTES + 1)),
      isCode(ErrorCode.PAYLOAD_TOO_LARGE),
    );
    await assert.rejects(
      appendDurableBatch(untouched, 'c', ['ok', 'bad\0']),
      isCode(ErrorCode.INVALID_PAYLOAD),
    );
    await assert.rejects(appendDurable(untouched, '', 'x'), isCode(ErrorCode.INVALID_CHANNEL));
    await assert.rejects(notifyDurable(untouched, 'c', 1n), isCode(ErrorCode.INVALID_PAYLOAD));
  });

  test('a 10 MiB payload round-trips byte-exact, alone in its page', async () => {
    const head = await resolveCursor(pool, 'now', { schema });
    const unit = 'aé€😀\n"\\';
    const big = unit.repeat(Math.ceil((10 * 1024 * 1024) / Buffer.byteLength(unit)));
    await appendDurableBatch(pool, 'big', [big, 'small'], schema);
    const first = await readJournal(pool, { schema, after: head, limitBytes: 1024 * 1024 });
    assert.equal(first.rows.length, 1);
    assert.equal(first.caughtUp, false);
    assert.ok(first.rows[0]?.payload === big, 'byte-exact');
    const second = await readJournal(pool, { schema, after: first.next, limitBytes: 1024 * 1024 });
    assert.deepEqual(
      second.rows.map((r) => r.payload),
      ['small'],
    );
  });
});

describe('reads', () => {
  test('pages by byte budget and by rows, and filter by channel', async () => {
    const head = await resolveCursor(pool, 'now', { schema });
    const kb100 = 'x'.repeat(100_000);
    await appendDurableBatch(
      pool,
      ['pa', 'pb', 'pa', 'pb', 'pa'],
      [kb100, kb100, kb100, kb100, kb100],
      schema,
    );
    const page = await readJournal(pool, { schema, after: head, limitBytes: 250_000 });
    assert.equal(page.rows.length, 2);
    const byRows = await readJournal(pool, { schema, after: head, limitRows: 3 });
    assert.equal(byRows.rows.length, 3);
    assert.equal(byRows.caughtUp, false);
    const onlyA = await readAll(pool, schema, head, { channels: ['pa'], limitRows: 1 });
    assert.deepEqual(
      onlyA.map((r) => r.channel),
      ['pa', 'pa', 'pa'],
    );
  });

  test("cursors: 'start', 'now', string order, invalid ones refused", async () => {
    assert.equal(await resolveCursor(untouched, 'start'), START_CURSOR);
    const now = await resolveCursor(pool, 'now', { schema });
    assert.ok(now > START_CURSOR);
    assert.equal((await readJournal(pool, { schema, after: 'now' })).rows.length, 0);
    await appendDurable(pool, 'cur', 'after now', schema);
    const rows = await readAll(pool, schema, now);
    assert.deepEqual(
      rows.map((r) => r.payload),
      ['after now'],
    );
    assert.ok(compareCursors(now, rows[0]?.cursor ?? '') < 0);
    assert.deepEqual(parseCursor('0000000000000000042-0000000000000000107'), {
      seq: '42',
      id: '107',
    });
    for (const bad of ['', '42-107', '9999999999999999999-0000000000000000000', 'start ', 42]) {
      await assert.rejects(
        readJournal(pool, { schema, after: bad as string }),
        isCode(ErrorCode.INVALID_CURSOR),
      );
    }
  });

  test('a consumer cursor never moves backwards', async () => {
    assert.equal(await loadCursor(pool, 'billing', { schema }), undefined);
    const a = '0000000000000000005-0000000000000000010';
    const b = '0000000000000000006-0000000000000000002';
    assert.equal(await saveCursor(pool, 'billing', b, { schema }), true);
    assert.equal(await saveCursor(pool, 'billing', a, { schema }), false);
    assert.equal(await saveCursor(pool, 'billing', b, { schema }), false);
    assert.equal(await loadCursor(pool, 'billing', { schema }), b);
    await assert.rejects(saveCursor(pool, '', a, { schema }), isCode(ErrorCode.INVALID_OPTION));
  });
});

describe('retention', () => {
  test('prune by count per channel: an expired gap, reported once, then the rest', async () => {
    const s = uniqueSchema('prune');
    made.push(s);
    await installSchema({ client: pool, schema: s });
    for (let i = 0; i < 10; i++)
      await appendDurableBatch(pool, ['old', 'keep'], [`o${i}`, `k${i}`], s);
    const reader = await readJournal(pool, { schema: s, after: 'start', limitRows: 2 });
    assert.deepEqual(
      reader.rows.map((r) => r.payload),
      ['o0', 'k0'],
    );
    const result = await prune(pool, { schema: s, maxPerChannel: 3, batchRows: 2 });
    assert.equal(result.rows, 14);
    assert.ok(result.statements > 7, 'small batches');
    // The reader goes on from where it was: each channel's loss is reported exactly once.
    const gaps = [];
    const rows = [];
    let cursor = reader.next;
    for (;;) {
      const page = await readJournal(pool, { schema: s, after: cursor, limitRows: 1 });
      gaps.push(...page.gaps);
      rows.push(...page.rows);
      cursor = page.next;
      if (page.caughtUp) break;
    }
    assert.deepEqual(gaps.map((g) => [g.kind, g.channel, g.from === reader.next]).sort(), [
      ['expired', 'keep', true],
      ['expired', 'old', true],
    ]);
    assert.deepEqual(
      rows.map((r) => r.payload),
      ['o7', 'k7', 'o8', 'k8', 'o9', 'k9'],
    );
    // From the start the count lost is known.
    const fromStart = await readJournal(pool, { schema: s, after: 'start' });
    assert.deepEqual(fromStart.gaps.map((g) => [g.channel, g.count]).sort(), [
      ['keep', 7],
      ['old', 7],
    ]);
    assert.equal((await readJournal(pool, { schema: s, after: fromStart.next })).gaps.length, 0);

    const status = await durableStatus(pool, s);
    assert.equal(status.rows, 6);
    assert.equal(status.oldestCursor, rows[0]?.cursor);
    // Prune everything by age: the newest commit record stays, so 'now' still means now.
    const now = await resolveCursor(pool, 'now', { schema: s });
    const all = await prune(pool, { schema: s, maxAgeMs: 0 });
    assert.equal(all.rows, 6);
    assert.equal(await resolveCursor(pool, 'now', { schema: s }), now);
    const commits = await pool.query(`SELECT count(*)::int AS n FROM ${journalNames(s).q}.commits`);
    assert.equal(commits.rows[0].n, 1);
    assert.equal((await readJournal(pool, { schema: s, after: 'now' })).gaps.length, 0);
    await assert.rejects(prune(pool, { schema: s }), isCode(ErrorCode.INVALID_OPTION));
  });

  test('durableStatus: version, rows, head, consumers and their lag', async () => {
    const s = uniqueSchema('stat');
    made.push(s);
    await installSchema({ client: pool, schema: s });
    const empty = await durableStatus(pool, s);
    assert.equal(empty.installed, true);
    assert.equal(empty.version, SCHEMA_VERSION);
    assert.equal(empty.headCursor, undefined);
    await appendDurable(pool, 'a', '1', s);
    const [first] = await readAll(pool, s);
    await saveCursor(pool, 'slow', first?.cursor ?? '', { schema: s });
    await appendDurable(pool, 'a', '2', s);
    await appendDurable(pool, 'a', '3', s);
    const status = await durableStatus(pool, s);
    assert.equal(status.rows, 3);
    assert.equal(status.oldestCursor, first?.cursor);
    assert.equal(status.headCursor, await resolveCursor(pool, 'now', { schema: s }));
    assert.deepEqual(
      status.consumers.map((c) => [c.name, c.cursor, c.lag]),
      [['slow', first?.cursor, 2]],
    );
  });
});
