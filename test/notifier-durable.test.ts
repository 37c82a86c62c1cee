/**
 * Publishing durable messages: `notifier.notify(…, { durable: true })`, `notifyMany` with it,
 * and the standalone `notify(client, …, { durable: true })` inside the caller's transaction,
 * against the real server of the pass, in a journal schema of this file's own. Every claim is
 * read back from the journal (readJournal), counted with sequence numbers.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createNotifier, ErrorCode, notify, PgNotifyError } from '../src/index.js';
import { wakeChannel } from '../src/journal.js';
import { MAX_DURABLE_PAYLOAD_BYTES } from '../src/journal-write.js';
import { quoteIdent } from '../src/sql.js';
import { isCode } from './helpers/assert.js';
import { databaseUrl, uniqueChannel } from './helpers/db.js';
import { connect, dropSchema, journalFixture, readAll, uniqueSchema } from './helpers/journal.js';

const { schema, pool } = journalFixture('dpub', 4);

/** Transactions (statements) the journal sequenced since the schema was made. */
async function commits(): Promise<number> {
  const res = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${quoteIdent(schema)}.commits`,
  );
  return res.rows[0]?.n ?? 0;
}

async function rowsOn(channel: string): Promise<string[]> {
  return (await readAll(pool, schema, 'start', { channels: [channel] })).map((r) => r.payload);
}

describe('notifier.notify(…, { durable: true })', () => {
  test('10 000 calls from concurrent callers: 10 000 rows, each caller in call order, none folded, in few statements', async () => {
    await using notifier = createNotifier({ connection: databaseUrl(), schema });
    const channel = uniqueChannel('seq');
    const dups = uniqueChannel('dup');
    const before = await commits();
    const callers = 8;
    const perCaller = 1250;
    // Callers 0-5 number their payloads (strings, or objects sent as JSON, in turn); callers 6
    // and 7 send the same text every time: PostgreSQL would fold those as plain NOTIFYs.
    const caller = async (c: number): Promise<void> => {
      let seq = 0;
      while (seq < perCaller) {
        const burst = Math.min(perCaller - seq, 1 + ((c * 37 + seq) % 97));
        const calls: Promise<void>[] = [];
        for (let i = 0; i < burst; i++, seq++) {
          if (c >= 6) calls.push(notifier.notify(dups, 'same', { durable: true }));
          else if (c % 2 === 0)
            calls.push(notifier.notify(channel, `${c}:${seq}`, { durable: true }));
          else calls.push(notifier.notify(channel, { c, seq }, { durable: true }));
        }
        await Promise.all(calls);
      }
    };
    await Promise.all(Array.from({ length: callers }, (_, c) => caller(c)));

    const rows = await rowsOn(channel);
    const same = await rowsOn(dups);
    assert.equal(rows.length + same.length, callers * perCaller);
    assert.equal(same.length, 2 * perCaller, 'identical durable calls are never folded');
    assert.ok(same.every((p) => p === 'same'));
    const next = new Array<number>(6).fill(0);
    for (const payload of rows) {
      const [c, seq] = payload.startsWith('{')
        ? (({ c, seq }) => [c, seq])(JSON.parse(payload) as { c: number; seq: number })
        : payload.split(':').map(Number);
      assert.equal(
        seq,
        next[c as number],
        `caller ${c}: expected ${next[c as number]}, got ${seq}`,
      );
      next[c as number] = (seq as number) + 1;
    }
    assert.deepEqual(next, new Array<number>(6).fill(perCaller));
    const statements = (await commits()) - before;
    assert.ok(
      statements < 2000,
      `${statements} statements for 10 000 calls: they were not batched`,
    );
  });

  test('plain and durable calls keep their call order: a batch is one kind, a plain one may follow a durable one', async () => {
    await using notifier = createNotifier({ connection: databaseUrl(), schema });
    const channel = uniqueChannel('mix');
    const wake = wakeChannel(schema);
    const client = await connect();
    const seen: string[] = [];
    let expect = 0;
    let arrived: () => void = () => undefined;
    const all = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    client.on('notification', (n) => {
      if (n.channel === wake && n.payload === channel) seen.push('wake');
      else if (n.channel === channel) seen.push(`plain:${n.payload}`);
      else return;
      if (seen.length === expect) arrived();
    });
    try {
      await client.query(`LISTEN ${quoteIdent(channel)}; LISTEN ${quoteIdent(wake)}`);
      const before = await commits();
      // d d p d p p d → batches [d d] [p] [d] [p p] [d]: three durable statements, each one
      // wake-up, between the plain ones.
      const kinds = ['d', 'd', 'p', 'd', 'p', 'p', 'd'];
      expect = 6;
      await Promise.all(
        kinds.map((k, i) =>
          k === 'd'
            ? notifier.notify(channel, `d${i}`, { durable: true })
            : notifier.notify(channel, `p${i}`),
        ),
      );
      await all;
      assert.deepEqual(seen, ['wake', 'plain:p2', 'wake', 'plain:p4', 'plain:p5', 'wake']);
      assert.deepEqual(await rowsOn(channel), ['d0', 'd1', 'd3', 'd6']);
      assert.equal((await commits()) - before, 3);
    } finally {
      await client.end();
    }
  });

  test('notifyMany durable: one row per payload, duplicates kept, several channels of calls mixed in', async () => {
    await using notifier = createNotifier({ connection: databaseUrl(), schema, maxBatch: 7 });
    const a = uniqueChannel('many');
    const b = uniqueChannel('many');
    const payloads = Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? 'x' : `m${i}`));
    await Promise.all([
      notifier.notifyMany(a, payloads, { durable: true }),
      notifier.notify(b, 'between', { durable: true }),
      notifier.notifyMany(b, [{ n: 1 }, { n: 1 }], { durable: true }),
    ]);
    assert.deepEqual(await rowsOn(a), payloads);
    assert.deepEqual(await rowsOn(b), ['between', '{"n":1}', '{"n":1}']);
  });

  test('payloads past 8000 bytes, byte-exact (10 MiB); over 64 MiB refused before sending; plain keeps its rule', async () => {
    await using notifier = createNotifier({ connection: databaseUrl(), schema });
    const channel = uniqueChannel('big');
    const medium = `é${'m'.repeat(9000)}😀`;
    const big = Buffer.alloc(10 * 1024 * 1024, 'abcdefghij\u00fc').toString('utf8');
    await Promise.all([
      notifier.notify(channel, medium, { durable: true }),
      notifier.notify(channel, big, { durable: true }),
    ]);
    const rows = await readAll(pool, schema, 'start', { channels: [channel], limitBytes: 1024 });
    assert.equal(rows.length, 2);
    assert.equal(rows[0]?.payload, medium);
    assert.ok(rows[1]?.payload === big, 'the 10 MiB payload comes back byte-exact');

    const tooBig = 'x'.repeat(MAX_DURABLE_PAYLOAD_BYTES + 1);
    await assert.rejects(
      notifier.notify(channel, tooBig, { durable: true }),
      isCode(ErrorCode.PAYLOAD_TOO_LARGE),
    );
    await assert.rejects(
      notifier.notifyMany(channel, ['fine', tooBig], { durable: true }),
      isCode(ErrorCode.PAYLOAD_TOO_LARGE),
    );
    await assert.rejects(notifier.notify(channel, medium), isCode(ErrorCode.PAYLOAD_TOO_LARGE));
    await assert.rejects(
      notifier.notify(channel, 'nul\0', { durable: true }),
      isCode(ErrorCode.INVALID_PAYLOAD),
    );
    // What JSON would silently change is refused, as for plain notify.
    for (const lossy of [{ n: Number.NaN }, { m: new Map([[1, 2]]) }, [Infinity]]) {
      await assert.rejects(
        notifier.notify(channel, lossy, { durable: true }),
        isCode(ErrorCode.INVALID_PAYLOAD),
      );
    }
    assert.equal((await rowsOn(channel)).length, 2, 'nothing refused was written');
  });

  test('a journal that is not installed: PGNOTIFY_SCHEMA_MISSING naming the fix, not a retryable NOTIFY_FAILED', async () => {
    const missing = uniqueSchema('none');
    await using notifier = createNotifier({ connection: databaseUrl(), schema: missing });
    const channel = uniqueChannel('miss');
    const check = (error: unknown): boolean => {
      assert.ok(error instanceof PgNotifyError);
      assert.equal(error.code, ErrorCode.SCHEMA_MISSING);
      assert.match(error.message, /pgnotify setup/);
      assert.match(error.message, /installSchema\(\)/);
      assert.notEqual(error.retryable, true);
      return true;
    };
    await assert.rejects(notifier.notify(channel, 'a', { durable: true }), check);
    await assert.rejects(notifier.notifyMany(channel, ['a', 'b'], { durable: true }), check);
    // Plain calls through the same notifier are unaffected.
    await notifier.notify(channel, 'plain');
    await assert.rejects(notify(pool, channel, 'a', { durable: true, schema: missing }), check);
    // A schema that exists without the journal (3F000 vs 42P01) is the same case.
    const bare = uniqueSchema('bare');
    await pool.query(`CREATE SCHEMA ${quoteIdent(bare)}`);
    try {
      await assert.rejects(notify(pool, channel, 'a', { durable: true, schema: bare }), check);
    } finally {
      await dropSchema(pool, bare);
    }
  });

  test('option checks: durable must be a boolean, the schema a valid name', async () => {
    await using notifier = createNotifier({ connection: databaseUrl(), schema });
    const channel = uniqueChannel('opt');
    await assert.rejects(
      notifier.notify(channel, 'a', { durable: 'yes' } as never),
      isCode(ErrorCode.INVALID_OPTION),
    );
    await assert.rejects(
      notify(pool, channel, 'a', { durable: 1 } as never),
      isCode(ErrorCode.INVALID_OPTION),
    );
    await assert.rejects(
      notify(pool, channel, 'a', { durable: true, schema: '' }),
      isCode(ErrorCode.INVALID_OPTION),
    );
    assert.throws(
      () => createNotifier({ connection: databaseUrl(), schema: 'x'.repeat(64) }),
      isCode(ErrorCode.INVALID_OPTION),
    );
    // durable: false is a plain notify.
    await notifier.notify(channel, 'plain', { durable: false });
    assert.deepEqual(await rowsOn(channel), []);
  });
});

describe('notify(client, …, { durable: true }) in the caller’s transaction', () => {
  test('visible after COMMIT only; never after ROLLBACK (nor a rolled-back savepoint)', async () => {
    const channel = uniqueChannel('tx');
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await notify(client, channel, 'committed-1', { durable: true, schema });
      await notify(client, channel, { n: 2 }, { durable: true, schema });
      assert.deepEqual(await rowsOn(channel), [], 'nothing is visible before COMMIT');
      await client.query('COMMIT');
      assert.deepEqual(await rowsOn(channel), ['committed-1', '{"n":2}']);

      await client.query('BEGIN');
      await notify(client, channel, 'rolled-back', { durable: true, schema });
      await client.query('ROLLBACK');

      await client.query('BEGIN');
      await notify(client, channel, 'kept', { durable: true, schema });
      await client.query('SAVEPOINT s');
      await notify(client, channel, 'savepoint-undone', { durable: true, schema });
      await client.query('ROLLBACK TO SAVEPOINT s');
      await client.query('COMMIT');
      assert.deepEqual(await rowsOn(channel), ['committed-1', '{"n":2}', 'kept']);
    } finally {
      client.release();
    }
  });

  test('the default schema is pgnotify; an aborted transaction says to roll back; large payloads', async () => {
    const channel = uniqueChannel('tx');
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT 1/0').catch(() => undefined);
      await assert.rejects(
        notify(client, channel, 'x', { durable: true, schema }),
        (error: unknown) =>
          error instanceof PgNotifyError &&
          error.code === ErrorCode.NOTIFY_FAILED &&
          /roll it back/.test(error.message),
      );
      await client.query('ROLLBACK');
      const big = 'z'.repeat(100_000);
      await notify(client, channel, big, { durable: true, schema });
      assert.deepEqual(await rowsOn(channel), [big]);
      await assert.rejects(
        notify(client, channel, 'x'.repeat(MAX_DURABLE_PAYLOAD_BYTES + 1), {
          durable: true,
          schema,
        }),
        isCode(ErrorCode.PAYLOAD_TOO_LARGE),
      );
    } finally {
      client.release();
    }
    // Without `schema`, the call targets "pgnotify": the error names it unless it is installed.
    const installed = await pool.query(`SELECT to_regclass('pgnotify.journal') IS NOT NULL AS ok`);
    if (installed.rows[0]?.ok !== true) {
      await assert.rejects(
        notify(pool, channel, 'x', { durable: true }),
        (error: unknown) =>
          error instanceof PgNotifyError &&
          error.code === ErrorCode.SCHEMA_MISSING &&
          error.message.includes('"pgnotify"'),
      );
    }
  });
});
