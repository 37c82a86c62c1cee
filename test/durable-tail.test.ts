/**
 * The shared live reader (Tail, durable-tail.ts) against a real journal: a wake-up that lands in
 * a microtask queued while the tail hands a page over is read, not dropped. The tail used to
 * mark itself idle in a callback one microtask after its read loop ended, so such a wake found
 * it "running" and was folded into a read that never came. And a feed replaying a backlog of
 * several pages on its own: order, no duplicate, the buffer never over its size, a stop
 * mid-replay leaves nothing behind (no row after it, no rejection).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Feed, type FeedHost, type FeedTarget } from '../src/durable-feed.js';
import { Tail } from '../src/durable-tail.js';
import { resolveCursor } from '../src/journal.js';
import type { JournalRow } from '../src/journal-read.js';
import { appendDurable, appendDurableBatch } from '../src/journal-write.js';
import { uniqueChannel, waitFor } from './helpers/db.js';
import { journalFixture } from './helpers/journal.js';

const { schema, pool } = journalFixture('dtail');

/**
 * A feed on `channel` that has joined its tail at the head, reading through `queryable`; `offer`
 * gets each row. Errors (reports and failures) land in `errors`.
 */
async function joinedFeed(
  channel: string,
  offer: (row: JournalRow) => void,
  queryable: FeedHost['queryable'] = pool,
): Promise<{ feed: Feed; errors: unknown[] }> {
  const errors: unknown[] = [];
  const host: FeedHost = {
    queryable,
    closed: () => false,
    report: (error) => errors.push(error),
    emitGap: () => undefined,
  };
  // No tail.prepare(): without the schema's wake key every wake-up means "read the journal".
  const tail = new Tail(host, schema, undefined);
  const target: FeedTarget = {
    ended: false,
    capacity: 100,
    room: () => 100,
    offer,
    offerGap: () => undefined,
    failed: (error) => errors.push(error),
  };
  const feed = new Feed(host, tail, target, [channel]);
  feed.position = await resolveCursor(pool, 'now', { schema });
  assert.equal(tail.join(feed), true);
  return { feed, errors };
}

test('a wake from a microtask queued while the tail hands a page over is read', async () => {
  const channel = uniqueChannel('dtail');
  /** Runs once the first read's result is back, before the tail sees it. */
  let afterRead: (() => Promise<unknown>) | undefined;
  const got: string[] = [];
  let gotTwo!: () => void;
  const two = new Promise<void>((resolve) => {
    gotTwo = resolve;
  });
  const { feed, errors } = await joinedFeed(
    channel,
    (row) => {
      got.push(row.payload);
      // The wake-up of 'two' reaches the tail in a microtask of this hand-over.
      if (row.payload === 'one') queueMicrotask(() => feed.wake(channel));
      if (row.payload === 'two') gotTwo();
    },
    {
      async query(text: string, values?: unknown[]) {
        const result = await pool.query(text, values);
        const hold = afterRead;
        afterRead = undefined;
        await hold?.();
        return result;
      },
    },
  );
  try {
    await appendDurable(pool, channel, 'one', schema);
    // 'two' commits after the read's snapshot: only a second read finds it.
    afterRead = () => appendDurable(pool, channel, 'two', schema);
    feed.wake(channel);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`'two' not read (got ${got})`)), 5000);
    });
    try {
      await Promise.race([two, late]);
    } finally {
      clearTimeout(timer);
    }
    assert.deepEqual(got, ['one', 'two']);
    assert.deepEqual(errors, []);
  } finally {
    feed.stop();
  }
});

test('a reconnect wake-up is read, also on a tail that never handled a commit wake-up', async () => {
  const channel = uniqueChannel('dtail');
  const got: string[] = [];
  const { feed, errors } = await joinedFeed(channel, (row) => got.push(row.payload));
  try {
    // Committed while the listener was away: its wake-ups never came; the reconnect's did.
    await appendDurable(pool, channel, 'during the outage', schema);
    feed.wake(undefined);
    await waitFor(() => got.length > 0, { message: 'the row committed during the outage' });
    assert.deepEqual(got, ['during the outage']);
    assert.deepEqual(errors, []);
  } finally {
    feed.stop();
  }
});

/** A replaying feed over `total` rows with a buffer of `capacity` drained a row per macrotask. */
async function replay(total: number, capacity: number, stopAt?: number) {
  const channel = uniqueChannel('dahead');
  const start = await resolveCursor(pool, 'now', { schema });
  const payloads = Array.from({ length: total }, (_, i) => String(i + 1));
  for (let i = 0; i < total; i += 1000)
    await appendDurableBatch(pool, channel, payloads.slice(i, i + 1000), schema);
  const errors: unknown[] = [];
  const reads: Promise<unknown>[] = [];
  const host: FeedHost = {
    queryable: {
      query(text: string, values?: unknown[]) {
        const result = pool.query(text, values);
        reads.push(result.catch(() => undefined));
        return result;
      },
    },
    closed: () => false,
    report: (error) => errors.push(error),
    emitGap: () => undefined,
  };
  const got: string[] = [];
  const buffer: string[] = [];
  let overflowed = 0;
  let ended = false;
  const tail = new Tail(host, schema, undefined);
  const target: FeedTarget = {
    get ended() {
      return ended;
    },
    capacity,
    room: () => capacity - buffer.length,
    offer: (row) => {
      if (buffer.length >= capacity) overflowed++;
      got.push(row.payload);
      buffer.push(row.payload);
      if (got.length === stopAt) {
        ended = true;
        feed.stop();
      }
    },
    offerGap: () => undefined,
    failed: (error) => errors.push(error),
  };
  const feed = new Feed(host, tail, target, [channel]);
  feed.position = start;
  const drain = setInterval(() => {
    buffer.splice(0, 100);
    feed.roomFreed();
  }, 1);
  let joined = false;
  try {
    await feed.catchUp();
    joined = tail.has(feed);
  } finally {
    clearInterval(drain);
    feed.stop();
  }
  // Whatever was still on its way settles without reaching the target or rejecting.
  await Promise.all(reads);
  await new Promise((resolve) => setImmediate(resolve));
  return { got, overflowed, errors, joined };
}

test('a replay of several pages: in order, once, within the buffer, then joins the tail', async () => {
  const r = await replay(3500, 2500);
  assert.equal(r.got.length, 3500);
  assert.deepEqual(
    r.got,
    Array.from({ length: 3500 }, (_, i) => String(i + 1)),
  );
  assert.equal(r.overflowed, 0);
  assert.equal(r.joined, true);
  assert.deepEqual(r.errors, []);
});

test('a stop mid-replay: nothing after it, nothing rejected', async () => {
  const r = await replay(3500, 10_000, 1500);
  assert.deepEqual(
    r.got,
    Array.from({ length: 1500 }, (_, i) => String(i + 1)),
  );
  assert.equal(r.joined, false);
  assert.deepEqual(r.errors, []);
});
