/**
 * Poll mode behind a real PgBouncer in transaction pooling: a listener whose subscriptions all
 * poll the journal works through the pooler (no LISTEN is needed) and receives every durable
 * message; a named consumer's cursor is stored through it too. Skipped, with a visible SKIP
 * line, where pgbouncer is not installed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createListener, type PgNotifyError } from '../src/index.js';
import { loadCursor } from '../src/journal.js';
import { appendDurableBatch } from '../src/journal-write.js';
import { databaseUrl, uniqueChannel, waitFor } from './helpers/db.js';
import { journalFixture } from './helpers/journal.js';
import { type PgBouncer, pgbouncerMissing, startPgBouncer } from './helpers/pgbouncer.js';
import { collect } from './helpers/rig.js';

const missing = pgbouncerMissing();
if (missing !== undefined) process.stdout.write(`SKIP durable-poll: ${missing}\n`);

const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => String(from + i));

describe('poll mode', () => {
  const { schema, pool } = journalFixture('poll');

  test('polls without LISTEN: the wake channel is not listened to', async () => {
    const errors: PgNotifyError[] = [];
    const listener = createListener({
      connection: databaseUrl(),
      decode: 'text',
      onError: (e) => errors.push(e as PgNotifyError),
    });
    await listener.start();
    try {
      const channel = uniqueChannel('poll');
      const box = collect();
      await listener.subscribe(channel, box.handler, {
        durable: { after: 'now', schema, mode: 'poll', pollIntervalMs: 20 },
      });
      await appendDurableBatch(pool, channel, range(1, 30), schema);
      await box.atLeast(30);
      assert.deepEqual(box.raws(), range(1, 30));
      assert.equal(listener.stats().channels.listening, 0, 'nothing LISTENed');
      assert.deepEqual(errors, []);
    } finally {
      await listener.stop();
    }
  });

  describe('through PgBouncer (transaction pooling)', { skip: missing }, () => {
    let bouncer: PgBouncer;
    before(async () => {
      bouncer = await startPgBouncer({ targetUrl: databaseUrl(), poolMode: 'transaction' });
    });
    after(async () => {
      await bouncer?.stop();
    });

    test('a listener whose subscriptions all poll receives every durable message', async () => {
      const errors: PgNotifyError[] = [];
      const listener = createListener({
        connection: bouncer.url,
        decode: 'text',
        heartbeat: { intervalMs: 200, timeoutMs: 2000 },
        onError: (e) => errors.push(e as PgNotifyError),
      });
      await listener.start();
      const channel = uniqueChannel('bnc');
      const consumer = `c_${channel}`;
      const box = collect();
      try {
        const other = collect();
        await listener.subscribe(channel, box.handler, {
          durable: { consumer, startAt: 'start', schema, mode: 'poll', pollIntervalMs: 25 },
        });
        await listener.subscribe(channel, other.handler, {
          durable: { after: 'start', schema, mode: 'poll', pollIntervalMs: 25 },
        });
        // Writers through the pooler too, in a few transactions.
        const writers = new (await import('pg')).default.Pool({
          connectionString: bouncer.url,
          max: 3,
        });
        writers.on('error', () => undefined);
        try {
          await Promise.all(
            [0, 1, 2, 3].map((w) =>
              appendDurableBatch(writers, channel, range(w * 100 + 1, w * 100 + 100), schema),
            ),
          );
        } finally {
          await writers.end();
        }
        await box.atLeast(400);
        await other.atLeast(400);
        assert.deepEqual([...box.raws()].sort(), [...range(1, 400)].sort());
        assert.deepEqual(other.raws(), box.raws(), 'one order for every reader');
        // Heartbeats (every 200 ms of quiet) pass through the pooler without trouble: three
        // intervals later the session is the same and still delivers.
        const since = Date.now();
        await waitFor(() => Date.now() - since > 700, { timeoutMs: 5000 });
        await appendDurableBatch(pool, channel, range(401, 410), schema);
        await box.atLeast(410);
        assert.equal(listener.stats().reconnects, 0);
        assert.deepEqual(
          errors.map((e) => e.code),
          [],
        );
      } finally {
        await listener.stop();
      }
      const stored = await loadCursor(pool, consumer, { schema });
      assert.ok(
        stored !== undefined && stored >= (box.got.at(-1)?.cursor as string),
        'stop() stored the cursor (at or past the last row handled) through the pooler',
      );
    });
  });
});
