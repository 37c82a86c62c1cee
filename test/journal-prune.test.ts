/**
 * Retention under load: writers keep appending sequence-numbered messages while a pruner keeps
 * each channel short and a slow reader pages through. Whatever the reader did not receive must
 * have been announced by an 'expired' gap on that channel before the reader's next row of it:
 * loss is never silent, and what is received stays in order.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type pg from 'pg';
import { prune } from '../src/journal-admin.js';
import { type ExpiredGap, type JournalRow, readJournal } from '../src/journal-read.js';
import { appendDurable, appendDurableBatch } from '../src/journal-write.js';
import { waitFor } from './helpers/db.js';
import { connect, journalFixture } from './helpers/journal.js';

const { schema, pool } = journalFixture('prn', 4);

test('concurrent writers, pruner and reader: every loss is announced by a gap, order kept', async () => {
  const CHANNELS = ['pa', 'pb'];
  const PER_CHANNEL = 300;
  const writers = await Promise.all(CHANNELS.map(() => connect()));
  const next = new Map(CHANNELS.map((c) => [c, 0]));
  const write = async (client: pg.Client, channel: string, upTo: number) => {
    let k = next.get(channel) ?? 0;
    while (k < upTo) {
      const size = Math.min(1 + (k % 3), upTo - k);
      const payloads = Array.from({ length: size }, () => `${k++}`);
      if (payloads.length === 1)
        await appendDurable(client, channel, payloads[0] as string, schema);
      else await appendDurableBatch(client, channel, payloads, schema);
    }
    next.set(channel, k);
  };
  const events: (JournalRow | ExpiredGap)[] = [];
  let cursor = 'start';
  const readPage = async () => {
    const page = await readJournal(pool, { schema, after: cursor, limitRows: 4 });
    events.push(...page.gaps, ...page.rows);
    cursor = page.next;
    return page.caughtUp;
  };
  try {
    // A first stretch, one page read, then a prune: the reader is certainly behind it.
    await Promise.all(writers.map((w, i) => write(w, CHANNELS[i] as string, 100)));
    await readPage();
    await prune(pool, { schema, maxPerChannel: 25, batchRows: 7 });
    // Then all three at once.
    let writing = true;
    const pruner = (async () => {
      while (writing) await prune(pool, { schema, maxPerChannel: 25, batchRows: 7 });
    })();
    const reader = (async () => {
      for (;;) {
        const done = !writing;
        if ((await readPage()) && done) return;
      }
    })();
    await Promise.all(writers.map((w, i) => write(w, CHANNELS[i] as string, PER_CHANNEL)));
    writing = false;
    await Promise.all([pruner, reader]);
  } finally {
    await Promise.all(writers.map((w) => w.end()));
  }

  let gaps = 0;
  for (const channel of CHANNELS) {
    let last = -1;
    let announced = false;
    let silent = 0;
    let reordered = 0;
    for (const e of events) {
      if (e.channel !== channel) continue;
      if ('kind' in e) {
        announced = true;
        gaps++;
        continue;
      }
      const k = Number(e.payload);
      if (k <= last) reordered++;
      else if (k > last + 1 && !announced) silent += k - last - 1;
      last = k;
      announced = false;
    }
    // The tail: whatever was never received must have been announced after the last row.
    if (last < PER_CHANNEL - 1 && !announced) silent += PER_CHANNEL - 1 - last;
    assert.deepEqual({ channel, silent, reordered }, { channel, silent: 0, reordered: 0 });
  }
  assert.ok(gaps >= 2, `the reader was overtaken (${gaps} gaps)`);
});

test('a prune whose batch comes back short because another deleted rows it chose goes on to the end', async () => {
  // Two prunes at once: one's batch waits on rows the other deletes, skips them once that one
  // commits, and comes back short. Stopping there ("nothing left") left most of the rows.
  const channel = 'race';
  await appendDurableBatch(
    pool,
    channel,
    Array.from({ length: 300 }, (_, i) => `${i}`),
    schema,
  );
  const locker = await connect();
  const app = `prune-race-${process.pid}`;
  const pruner = await connect();
  try {
    await pruner.query(`SET application_name = '${app}'`);
    // The other prune, in the middle of its batch: the first 10 victims deleted, not committed.
    await locker.query('BEGIN');
    await locker.query(
      `DELETE FROM "${schema}".journal WHERE id IN (SELECT id FROM "${schema}".journal WHERE channel = $1 ORDER BY id LIMIT 10)`,
      [channel],
    );
    const pruning = prune(pruner, { schema, maxAgeMs: 0, batchRows: 100 });
    await waitFor(
      async () =>
        (
          await pool.query(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
            [app],
          )
        ).rows.length > 0,
      { message: 'the prune waiting on the rows the other one deletes' },
    );
    await locker.query('COMMIT');
    await pruning;
    const left = await pool.query(
      `SELECT count(*)::int AS n FROM "${schema}".journal WHERE channel = $1`,
      [channel],
    );
    assert.equal(left.rows[0].n, 0);
  } finally {
    await locker.query('ROLLBACK').catch(() => undefined);
    await locker.end();
    await pruner.end();
  }
});
