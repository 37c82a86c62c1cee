/**
 * Small in-process figures for the durable journal (the full benchmark lives in bench/): bytes
 * per message, durable vs plain batched insert throughput through the same statement shape, the
 * cost of the commit-time trigger, and catch-up read rate. Prints a MEASURE line per figure;
 * asserts only sanity (the machine is shared, so no speed thresholds).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type pg from 'pg';
import { installSchema } from '../src/journal.js';
import { readJournal } from '../src/journal-read.js';
import { journalNames, journalStatements } from '../src/journal-sql.js';
import { appendDurable } from '../src/journal-write.js';
import { NOTIFY_BATCH_SQL, NOTIFY_SQL } from '../src/sql.js';
import { connect, dropSchema, testPool, uniqueSchema } from './helpers/journal.js';

const withTrigger = uniqueSchema('msr');
const noTrigger = uniqueSchema('msrnt');
let pool: pg.Pool;
let clients: pg.Client[] = [];

before(async () => {
  pool = testPool(2);
  await installSchema({ client: pool, schema: withTrigger });
  await installSchema({ client: pool, schema: noTrigger });
  await pool.query(
    `ALTER TABLE ${journalNames(noTrigger).q}.journal DISABLE TRIGGER sequence_commit`,
  );
  clients = await Promise.all([1, 2, 3, 4].map(() => connect()));
});

after(async () => {
  await Promise.all(clients.map((c) => c.end()));
  await dropSchema(pool, withTrigger);
  await dropSchema(pool, noTrigger);
  await pool.end();
});

const say = (line: string) => process.stdout.write(`MEASURE ${line}\n`);
const payload = (i: number) => `${String(i).padStart(8, '0')}:${'x'.repeat(91)}`; // 100 bytes

/** The fastest of `rounds` runs of `fn`, in ms: the least disturbed by a shared machine. */
async function fastest(rounds: number, fn: () => Promise<void>): Promise<number> {
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    await fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return best;
}

/** Runs the contestants in turn, `rounds` times, and returns each one's fastest run. */
async function interleaved<K extends string>(
  rounds: number,
  contestants: Record<K, () => Promise<void>>,
): Promise<Record<K, number>> {
  const best = {} as Record<K, number>;
  for (let r = 0; r < rounds; r++) {
    for (const key of Object.keys(contestants) as K[]) {
      const ms = await fastest(1, contestants[key]);
      best[key] = Math.min(best[key] ?? Number.POSITIVE_INFINITY, ms);
    }
  }
  return best;
}

function batchRun(client: pg.Client, schema: string | undefined): () => Promise<void> {
  let n = 0;
  return async () => {
    for (let b = 0; b < 10; b++) {
      const array = JSON.stringify(Array.from({ length: 1000 }, () => payload(n++)));
      if (schema === undefined) await client.query(NOTIFY_BATCH_SQL.text.one, ['msr_plain', array]);
      else {
        const sql = journalStatements(schema).appendBatch.text.one;
        await client.query(sql, ['msr', array, journalNames(schema).wakeChannel]);
      }
    }
  };
}

test('durable journal figures', async () => {
  const [c1, c2, c3, c4] = clients as [pg.Client, pg.Client, pg.Client, pg.Client];
  // 10 000 messages in batches of 1 000: durable (with / without the trigger) vs plain notify.
  const rate = (ms: number) => `${Math.round(10_000 / (ms / 1000)).toLocaleString('en')} msg/s`;
  const batched = await interleaved(5, {
    durable: batchRun(c1, withTrigger),
    bare: batchRun(c1, noTrigger),
    plain: batchRun(c1, undefined),
  });
  say(
    `batched 10k x 100 B (1000/statement, fastest of 5): durable ${rate(batched.durable)}, durable without trigger ${rate(batched.bare)}, plain pg_notify ${rate(batched.plain)}; durable/plain = ${(batched.plain / batched.durable).toFixed(2)}x, trigger +${(((batched.durable - batched.bare) / 10_000) * 1000).toFixed(2)} us/msg`,
  );

  // Bytes per message (50 000 rows of 100 B, from the five rounds).
  const { q } = journalNames(withTrigger);
  await pool.query(`VACUUM ANALYZE ${q}.journal, ${q}.commits`);
  const size = (
    await pool.query(
      `SELECT pg_total_relation_size('${q}.journal') AS j, pg_total_relation_size('${q}.commits') AS c,
       (SELECT count(*) FROM ${q}.journal) AS n`,
    )
  ).rows[0] as { j: string; c: string; n: string };
  assert.equal(Number(size.n), 50_000);
  say(
    `journal bytes per 100 B message: ${(Number(size.j) / Number(size.n)).toFixed(0)} (table + index), commits ${(Number(size.c) / Number(size.n)).toFixed(1)} per message at 1000 per transaction`,
  );

  // One message per transaction: the trigger's cost is per transaction (advisory lock + commits
  // row). synchronous_commit off takes the disk flush, the same for all, out of the comparison.
  const single = (client: pg.Client, schema: string | undefined, count: number) => async () => {
    for (let i = 0; i < count; i++) {
      if (schema === undefined) await client.query(NOTIFY_SQL, ['msr_plain', payload(i)]);
      else await appendDurable(client, 'msr', payload(i), schema);
    }
  };
  for (const sync of ['off', 'on']) {
    await Promise.all(clients.map((c) => c.query(`SET synchronous_commit = ${sync}`)));
    const n = sync === 'off' ? 300 : 50;
    const one = await interleaved(3, {
      durable: single(c1, withTrigger, n),
      bare: single(c1, noTrigger, n),
      plain: single(c1, undefined, n),
    });
    const per = (ms: number) => `${((ms / n) * 1000).toFixed(0)} us`;
    say(
      `single-message transactions, one connection, synchronous_commit ${sync}: durable ${per(one.durable)}, without trigger ${per(one.bare)}, plain notify ${per(one.plain)} per transaction`,
    );
    const concurrent = (schema: string | undefined) => () =>
      Promise.all([c1, c2, c3, c4].map((c) => single(c, schema, n / 2)())).then(() => undefined);
    const four = await interleaved(3, {
      durable: concurrent(withTrigger),
      bare: concurrent(noTrigger),
      plain: concurrent(undefined),
    });
    const rate4 = (ms: number) => `${Math.round((2 * n) / (ms / 1000))}/s`;
    say(
      `4 connections, single-message transactions, synchronous_commit ${sync}: durable ${rate4(four.durable)}, without trigger ${rate4(four.bare)}, plain notify ${rate4(four.plain)}`,
    );
  }

  // Catch-up: every row of the journal, 1 000 per page.
  const total = Number(
    (await pool.query(`SELECT count(*) AS n FROM ${q}.journal`)).rows[0].n as string,
  );
  let read = 0;
  const readMs = await fastest(1, async () => {
    let after = 'start';
    for (;;) {
      const page = await readJournal(c2, { schema: withTrigger, after });
      read += page.rows.length;
      after = page.next;
      if (page.caughtUp) return;
    }
  });
  assert.equal(read, total);
  say(
    `catch-up read of ${total} rows, 1000 per page: ${Math.round(total / (readMs / 1000)).toLocaleString('en')} msg/s`,
  );
});
