/**
 * Durable subscriptions through the listener: replay then live in journal order, cursors on
 * every notification, named consumers (stored cursor, retry, acks by consumption style),
 * backpressure instead of overflow, expired gaps, commit order, a terminated backend.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import pg from 'pg';
import type { Gap, Listener, Notification } from '../src/index.js';
import { loadCursor, saveCursor, wakeChannel } from '../src/journal.js';
import { prune } from '../src/journal-admin.js';
import { appendDurable, appendDurableBatch } from '../src/journal-write.js';
import { databaseUrl, uniqueChannel, waitFor } from './helpers/db.js';
import { connect, isJournalRead, journalFixture } from './helpers/journal.js';
import { collect, listenerRig } from './helpers/rig.js';

const { schema, pool } = journalFixture('dl', 4);

const send = (channel: string, payloads: string[]) =>
  appendDurableBatch(pool, channel, payloads, schema);
const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => String(from + i));

/**
 * Sends 1..10 on `channel`, has `listener` read them, then prunes the channel to its newest 3:
 * returns the cursor after 2, which retention has now passed.
 */
async function expiredCursor(listener: Listener, channel: string): Promise<string> {
  await send(channel, range(1, 10));
  const probe = collect();
  await listener.subscribe(channel, probe.handler, { durable: { after: 'start', schema } });
  await probe.atLeast(10);
  await prune(pool, { schema, maxPerChannel: 3 });
  return probe.got[1]?.cursor as string;
}

describe('durable subscriptions', () => {
  test('replay from start, then live, in order, each with a cursor; plain NOTIFYs never reach it', async () => {
    const { listener, errors } = listenerRig({ decode: 'text' });
    const channel = uniqueChannel('dur');
    await send(channel, range(1, 5));
    await listener.start();
    try {
      const box = collect();
      await listener.subscribe(channel, box.handler, { durable: { after: 'start', schema } });
      await box.atLeast(5);
      await pool.query('SELECT pg_notify($1, $2)', [channel, 'plain']);
      await send(channel, range(6, 8));
      await box.atLeast(8);
      assert.deepEqual(box.raws(), range(1, 8));
      const cursors = box.got.map((n) => n.cursor as string);
      assert.deepEqual([...cursors].sort(), cursors, 'cursors ascend');
      assert.equal(new Set(cursors).size, 8);
      const listening = listener.channels().map((c) => c.name);
      assert.ok(!listening.includes(channel), 'the data channel is not LISTENed');
      assert.ok(listening.includes(wakeChannel(schema)));
      // after: cursor(m3) replays exactly m4..m8
      const again = collect();
      await listener.subscribe(channel, again.handler, {
        durable: { after: cursors[2] as string, schema },
      });
      await again.atLeast(5);
      assert.deepEqual(again.raws(), range(4, 8));
      assert.deepEqual(errors, []);
    } finally {
      await listener.stop();
    }
  });

  test("'now' starts after what is committed; subscribe resolves with the position taken", async () => {
    const { listener } = listenerRig({ decode: 'text' });
    const channel = uniqueChannel('now');
    await send(channel, ['old']);
    await listener.start();
    try {
      const feed = await listener.subscribe(channel, { durable: { after: 'now', schema } });
      await send(channel, ['new']);
      const n = await feed.next({ timeoutMs: 10_000 });
      assert.equal(n?.raw, 'new');
      assert.equal(typeof n?.cursor, 'string');
    } finally {
      await listener.stop();
    }
  });

  test('commit order: A inserts first and commits last, B commits between; A is never skipped', async () => {
    const { listener } = listenerRig({ decode: 'text' });
    const channel = uniqueChannel('ab');
    await listener.start();
    const a = await connect();
    const b = await connect();
    try {
      const box = collect();
      await listener.subscribe(channel, box.handler, { durable: { after: 'now', schema } });
      await a.query('BEGIN');
      await appendDurable(a, channel, 'A', schema);
      await b.query('BEGIN');
      await appendDurable(b, channel, 'B', schema);
      await b.query('COMMIT');
      await box.atLeast(1, 'B');
      await a.query('COMMIT');
      await box.atLeast(2, 'A');
      assert.deepEqual(box.raws(), ['B', 'A']);
      const replay = collect();
      await listener.subscribe(channel, replay.handler, {
        durable: { after: box.got[0]?.cursor as string, schema },
      });
      await replay.atLeast(1);
      assert.deepEqual(replay.raws(), ['A'], 'after cursor(B) replays A');
    } finally {
      await a.end();
      await b.end();
      await listener.stop();
    }
  });

  test('a named consumer resumes where it acknowledged; a throwing handler is retried in order', async () => {
    const channel = uniqueChannel('cons');
    const consumer = `c_${channel}`;
    const first = listenerRig({ decode: 'text' });
    await first.listener.start();
    const seen: string[] = [];
    let failOnce = true;
    await first.listener.subscribe(
      channel,
      (n) => {
        if (n.raw === '2' && failOnce) {
          failOnce = false;
          throw new Error('boom');
        }
        seen.push(n.raw);
      },
      { durable: { consumer, startAt: 'start', schema } },
    );
    await send(channel, range(1, 4));
    await waitFor(() => seen.length >= 4, { timeoutMs: 10_000 });
    assert.deepEqual(seen, range(1, 4), 'the failed message was retried before the next');
    assert.equal(first.errors.filter((e) => e.code === 'PGNOTIFY_HANDLER_FAILED').length, 1);
    await first.listener.stop();
    assert.deepEqual(
      first.errors.map((e) => e.code),
      ['PGNOTIFY_HANDLER_FAILED'],
    );
    const stored = await loadCursor(pool, consumer, { schema });
    assert.ok(stored !== undefined, 'stop() flushed the cursor');
    await send(channel, range(5, 6));
    const second = listenerRig({ decode: 'text' });
    await second.listener.start();
    try {
      const box = collect();
      await second.listener.subscribe(channel, box.handler, { durable: { consumer, schema } });
      await box.atLeast(2);
      assert.deepEqual(box.raws(), ['5', '6'], 'resumed after the acknowledged ones');
    } finally {
      await second.listener.stop();
    }
  });

  test('stop() while a message keeps failing: nothing buffered behind it is handled; the restart begins at it', async () => {
    const channel = uniqueChannel('poison');
    const consumer = `c_${channel}`;
    const first = listenerRig({ decode: 'text' });
    await first.listener.start();
    const handled: string[] = [];
    await first.listener.subscribe(
      channel,
      (n) => {
        if (n.raw === '3') throw new Error('poison');
        handled.push(n.raw);
      },
      { durable: { consumer, startAt: 'start', schema } },
    );
    await send(channel, range(1, 8));
    await waitFor(() => first.errors.length > 0, { message: 'message 3 failed' });
    await first.listener.stop(); // a graceful stop: it would run the buffered handler work
    assert.deepEqual(handled, ['1', '2'], 'no message after the failing one');
    const second = listenerRig({ decode: 'text' });
    await second.listener.start();
    try {
      const box = collect();
      await second.listener.subscribe(channel, box.handler, { durable: { consumer, schema } });
      await box.atLeast(6);
      assert.deepEqual(box.raws(), range(3, 8));
    } finally {
      await second.listener.stop();
    }
  });

  test('an async handler: its row is acknowledged once its promise resolves; a rejection is retried in order', async () => {
    const channel = uniqueChannel('acons');
    const consumer = `c_${channel}`;
    const rig = listenerRig({ decode: 'text' });
    await rig.listener.start();
    const seen: string[] = [];
    const cursors = new Map<string, string>();
    let rejectOnce = true;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    try {
      await rig.listener.subscribe(
        channel,
        async (n) => {
          cursors.set(n.raw, n.cursor as string);
          if (n.raw === '2' && rejectOnce) {
            rejectOnce = false;
            throw new Error('boom');
          }
          seen.push(n.raw);
          if (n.raw === '3') await gate;
        },
        { durable: { consumer, startAt: 'start', schema } },
      );
      await send(channel, range(1, 3));
      await waitFor(() => seen.length === 3, { timeoutMs: 10_000 });
      assert.deepEqual(seen, range(1, 3), 'the rejected message was retried before the next');
      // 3's handler has not settled: the stored cursor reaches 2 and stays there.
      await waitFor(
        async () => (await loadCursor(pool, consumer, { schema })) === cursors.get('2'),
        {
          intervalMs: 20,
          timeoutMs: 10_000,
        },
      );
      release();
      // Nothing waits any more: the stored cursor is 3's or the read position past it.
      await waitFor(
        async () =>
          ((await loadCursor(pool, consumer, { schema })) ?? '') >= (cursors.get('3') as string),
        {
          intervalMs: 20,
          timeoutMs: 10_000,
        },
      );
      assert.deepEqual(
        rig.errors.map((e) => e.code),
        ['PGNOTIFY_HANDLER_FAILED'],
      );
    } finally {
      release();
      await rig.listener.stop();
    }
  });

  test('for await: break does not acknowledge the item it broke on', async () => {
    const channel = uniqueChannel('iter');
    const consumer = `c_${channel}`;
    await send(channel, range(1, 3));
    const { listener } = listenerRig({ decode: 'text' });
    await listener.start();
    try {
      const feed = await listener.subscribe(channel, {
        durable: { consumer, startAt: 'start', schema },
      });
      for await (const n of feed) if (n.raw === '2') break;
      const again = await listener.subscribe(channel, { durable: { consumer, schema } });
      const n = await again.next({ timeoutMs: 10_000 });
      assert.equal(n?.raw, '2', '1 was acknowledged, 2 was not');
    } finally {
      await listener.stop();
    }
  });

  test('a backlog larger than the buffer is delivered whole: reading pauses, nothing dropped', async () => {
    const channel = uniqueChannel('bp');
    await send(channel, range(1, 2500));
    const { listener, errors } = listenerRig({ decode: 'text' });
    await listener.start();
    try {
      const feed = await listener.subscribe(channel, {
        durable: { after: 'start', schema },
        buffer: { max: 50, overflow: 'drop-oldest' },
      });
      const got: string[] = [];
      let maxBuffered = 0;
      for await (const n of feed) {
        maxBuffered = Math.max(maxBuffered, feed.buffered);
        got.push(n.raw);
        if (got.length % 100 === 0) await new Promise((r) => setImmediate(r));
        if (got.length === 2500) break;
      }
      assert.deepEqual(got, range(1, 2500));
      assert.ok(maxBuffered <= 50, `buffer stayed within its bound (${maxBuffered})`);
      assert.equal(feed.dropped, 0);
      assert.deepEqual(
        errors.map((e) => e.code),
        [],
      );
    } finally {
      await listener.stop();
    }
  });

  test('an expired cursor gets an expired gap in its place, then the rows after it', async () => {
    const channel = uniqueChannel('exp');
    const { listener } = listenerRig({ decode: 'text' });
    await listener.start();
    try {
      const cursor = await expiredCursor(listener, channel);
      const events: Gap[] = [];
      listener.on('gap', (g) => events.push(g));
      const items: (Notification | Gap)[] = [];
      const feed = await listener.subscribe(channel, { durable: { after: cursor, schema } });
      const gaps: Gap[] = [];
      const loop = (async () => {
        for await (const item of feed.withGaps()) {
          items.push(item);
          if (item.kind === undefined && item.raw === '10') break;
        }
      })();
      await loop;
      void gaps;
      const first = items[0] as Gap;
      assert.equal(first.kind, 'expired');
      if (first.kind === 'expired') {
        assert.equal(first.channel, channel);
        assert.equal(first.from, cursor);
      }
      assert.deepEqual(
        items.slice(1).map((n) => (n as Notification).raw),
        range(8, 10),
      );
      assert.ok(
        events.some((g) => g.kind === 'expired'),
        "the listener's 'gap' event too",
      );
    } finally {
      await listener.stop();
    }
  });

  test('a buffer of one takes a page of one row and its expired gap, named or not', async () => {
    // Such a page is 2 items against a room of at most 1: its hand-over must not wait for room
    // for the gap, which it would never get.
    const channel = uniqueChannel('exp1');
    const { listener, errors } = listenerRig({ decode: 'text' });
    await listener.start();
    try {
      const cursor = await expiredCursor(listener, channel);
      const consumer = `c_${channel}`;
      await saveCursor(pool, consumer, cursor, { schema });
      const gaps: Gap[] = [];
      const unnamed = collect();
      const named = collect();
      const buffer = { max: 1 };
      await listener.subscribe(channel, unnamed.handler, {
        buffer,
        durable: { after: cursor, schema },
        onGap: (gap) => void gaps.push(gap),
      });
      await listener.subscribe(channel, named.handler, {
        buffer,
        durable: { consumer, schema },
        onGap: (gap) => void gaps.push(gap),
      });
      await unnamed.atLeast(3);
      await named.atLeast(3);
      assert.deepEqual(unnamed.raws(), range(8, 10));
      assert.deepEqual(named.raws(), range(8, 10));
      assert.deepEqual(
        gaps.map((g) => g.kind),
        ['expired', 'expired'],
      );
      assert.deepEqual(errors, []);
    } finally {
      await listener.stop();
    }
  });

  test('unmute() reads what was committed while muted, without waiting for a later commit', async () => {
    const channel = uniqueChannel('mute');
    const { listener, errors } = listenerRig({ decode: 'text' });
    await listener.start();
    try {
      const box = collect();
      await listener.subscribe(channel, box.handler, { durable: { after: 'now', schema } });
      await send(channel, ['1']);
      await box.atLeast(1);
      await listener.mute(); // every channel: the wake channel is UNLISTENed too
      await send(channel, ['2']);
      await listener.unmute();
      await box.atLeast(2, 'the message committed while muted');
      assert.deepEqual(box.raws(), ['1', '2']);
      assert.deepEqual(errors, []);
    } finally {
      await listener.stop();
    }
  });

  test('a terminated backend: replay from the last delivered cursor, nothing lost or repeated, no outage gap', async () => {
    const channel = uniqueChannel('kill');
    const { listener } = listenerRig({ decode: 'text', reconnect: { minDelayMs: 20 } });
    await listener.start();
    const admin = await connect();
    try {
      const box = collect();
      const gaps: Gap[] = [];
      await listener.subscribe(channel, box.handler, {
        durable: { after: 'now', schema },
        onGap: (g) => gaps.push(g),
      });
      const events: Gap[] = [];
      listener.on('gap', (g) => events.push(g));
      await send(channel, range(1, 50));
      await box.atLeast(50);
      const reconnected = new Promise<void>((resolve) =>
        listener.on('reconnected', () => resolve()),
      );
      await admin.query('SELECT pg_terminate_backend($1)', [listener.pid]);
      await send(channel, range(51, 100)); // while it is away
      await reconnected;
      await send(channel, range(101, 120));
      await box.atLeast(120);
      assert.deepEqual(box.raws(), range(1, 120));
      assert.deepEqual(gaps, [], 'no gap: nothing was lost');
      assert.deepEqual(events, [], "the listener's gap event leaves the wake channel out");
    } finally {
      await admin.end();
      await listener.stop();
    }
  });

  test("the listener's schemas apply: a payload that fails is reported and passed over", async () => {
    const channel = uniqueChannel('schema');
    const schemaOf = {
      '~standard': {
        version: 1 as const,
        vendor: 'test',
        validate: (v: unknown) =>
          typeof v === 'object' && v !== null && 'id' in v
            ? { value: v }
            : { issues: [{ message: 'expected an object with an id' }] },
      },
    };
    const { listener, errors } = listenerRig({ schemas: { [channel]: schemaOf } });
    await listener.start();
    try {
      const box = collect();
      await listener.subscribe(channel, box.handler, { durable: { after: 'now', schema } });
      await send(channel, ['{"id":1}', '"nope"', '{"id":3}']);
      await box.atLeast(2);
      assert.deepEqual(box.payloads(), [{ id: 1 }, { id: 3 }]);
      assert.deepEqual(
        errors.map((e) => e.code),
        ['PGNOTIFY_VALIDATION_FAILED'],
      );
    } finally {
      await listener.stop();
    }
  });

  test('an asynchronous schema keeps journal order: later rows wait for an earlier one', async () => {
    const channel = uniqueChannel('aschema');
    const held = new Map<number, () => void>();
    type Row = { id: number };
    const schemaOf = {
      '~standard': {
        version: 1 as const,
        vendor: 'test',
        validate: (v: unknown) =>
          new Promise<{ value: Row & { checked: true } } | { issues: { message: string }[] }>(
            (resolve) => {
              const { id } = v as Row;
              const settle = () =>
                resolve(
                  id === 2
                    ? { issues: [{ message: 'two is refused' }] }
                    : { value: { id, checked: true } },
                );
              // Row 1's validation waits for the test; rows 2 and 3 settle at once.
              if (id === 1) held.set(1, settle);
              else settle();
            },
          ),
      },
    };
    const { listener, errors } = listenerRig({ schemas: { [channel]: schemaOf } });
    await listener.start();
    const consumer = `async-${channel}`;
    try {
      const box = collect();
      const sub = await listener.subscribe(channel, box.handler, {
        durable: { consumer, startAt: 'now', schema },
      });
      await send(channel, ['{"id":1}', '{"id":2}', '{"id":3}']);
      await waitFor(() => held.get(1), { message: "row 1's validation started" });
      assert.equal(box.got.length, 0, 'nothing overtakes row 1 while it validates');
      held.get(1)?.();
      await box.atLeast(2);
      assert.deepEqual(box.payloads(), [
        { id: 1, checked: true },
        { id: 3, checked: true },
      ]);
      assert.deepEqual(
        errors.map((e) => e.code),
        ['PGNOTIFY_VALIDATION_FAILED'],
      );
      // The refused row does not hold the consumer back: its cursor reaches row 3.
      await sub.unsubscribe();
      const stored = await loadCursor(pool, consumer, { schema });
      const third = box.got[1]?.cursor as string;
      assert.ok(stored !== undefined && stored >= third, `${stored} at or past ${third}`);
    } finally {
      await listener.stop();
    }
  });

  test('a named consumer never stores a cursor past a row still in its asynchronous validation', async () => {
    // The feed's position moves past a row when it is handed over; the row was counted for the
    // cursor only once validated, so a flush in between (unsubscribe here, or the 100 ms timer)
    // stored the position past it, and a restart never handled it.
    const channel = uniqueChannel('aheld');
    let started!: () => void;
    const validating = new Promise<void>((resolve) => (started = resolve));
    const schemaOf = {
      '~standard': {
        version: 1 as const,
        vendor: 'test',
        validate: (v: unknown) =>
          (v as { id: number }).id === 2
            ? new Promise<never>(() => started()) // row 2 never settles in this listener
            : { value: v },
      },
    };
    const { listener, errors } = listenerRig({ schemas: { [channel]: schemaOf } });
    await listener.start();
    const consumer = `held-${channel}`;
    try {
      const box = collect();
      const sub = await listener.subscribe(channel, box.handler, {
        durable: { consumer, startAt: 'now', schema },
      });
      await send(channel, ['{"id":1}']);
      await box.atLeast(1);
      await send(channel, ['{"id":2}']);
      await validating;
      await sub.unsubscribe(); // stores the consumer's cursor
      assert.equal(await loadCursor(pool, consumer, { schema }), box.got[0]?.cursor);
      assert.deepEqual(errors, []);
    } finally {
      await listener.stop();
    }
    // Started again without the hold, it gets row 2.
    const { listener: again } = listenerRig();
    await again.start();
    try {
      const box = collect();
      await again.subscribe(channel, box.handler, { durable: { consumer, schema } });
      await box.atLeast(1);
      assert.deepEqual(box.payloads(), [{ id: 2 }]);
    } finally {
      await again.stop();
    }
  });

  test('one shared read per wake: many caught-up subscriptions, few queries', async () => {
    const channel = uniqueChannel('fan');
    let reads = 0;
    // Counts the journal reads the listener sends (each read is one statement).
    const { listener } = listenerRig({
      decode: 'text',
      connection: () => {
        const client = new pg.Client({ connectionString: databaseUrl() });
        const query = client.query.bind(client) as (...args: unknown[]) => unknown;
        (client as unknown as { query: unknown }).query = (...args: unknown[]) => {
          if (isJournalRead(args[0])) reads++;
          return query(...args);
        };
        return client;
      },
    });
    await listener.start();
    try {
      const boxes = Array.from({ length: 200 }, () => collect());
      for (const box of boxes)
        await listener.subscribe(channel, box.handler, { durable: { after: 'now', schema } });
      // Each subscription reads on its own until it has caught up and joined the shared reader:
      // warm up until a round needs no read of its own.
      let warm = 0;
      for (let quiet = false; !quiet && warm < 20; ) {
        warm++;
        const start = reads;
        await send(channel, [`warm-up ${warm}`]);
        await waitFor(() => boxes.every((b) => b.got.length >= warm), { timeoutMs: 10_000 });
        quiet = reads === start;
      }
      for (const box of boxes) box.got.length = 0;
      const before = reads;
      for (let i = 1; i <= 5; i++) {
        await send(channel, [String(i)]);
        await waitFor(() => boxes.every((b) => b.got.length >= i), { timeoutMs: 10_000 });
      }
      const used = reads - before;
      // At most one read per wake-up; none when each commit's wake-up carries its rows.
      assert.ok(used <= 5, `${used} journal reads for 5 messages to 200 subscriptions`);
      for (const box of boxes) assert.deepEqual(box.raws(), range(1, 5));
    } finally {
      await listener.stop();
    }
  });
});
