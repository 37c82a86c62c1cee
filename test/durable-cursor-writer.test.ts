/**
 * Named consumers' cursor writes on a connection of their own: a write stuck on a lock (or
 * waiting for its WAL flush) never holds up the listener's journal reads; a writer connection
 * the server closed is replaced at the next write, one gone silent after connectTimeoutMs;
 * stop() closes it. A catch-up keeps reading while its writes wait, and still hands over no
 * more than MAX_UNSTORED past the stored cursor.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { MAX_UNSTORED } from '../src/durable-acks.js';
import { loadCursor, saveCursor } from '../src/journal.js';
import { START_CURSOR } from '../src/journal-cursor.js';
import { appendDurable } from '../src/journal-write.js';
import { deferred } from './helpers/async.js';
import { backendPids, databaseUrl, terminate, uniqueChannel, waitFor } from './helpers/db.js';
import { connect, isJournalRead, journalFixture } from './helpers/journal.js';
import { startProxy } from './helpers/proxy.js';
import { collect, listenerRig } from './helpers/rig.js';

const { schema, pool } = journalFixture('dcw', 3);

/** The listener's backends by application name; the writer is the one that is not the listener's. */
async function writerPid(app: string, listenerPid: number | undefined): Promise<number> {
  let pid: number | undefined;
  await waitFor(
    async () => {
      pid = (await backendPids(app)).find((p) => p !== listenerPid);
      return pid !== undefined;
    },
    { message: 'the cursor writer connection' },
  );
  return pid as number;
}

test('a cursor write blocked on a lock holds up no journal read of the listener', async () => {
  const app = uniqueChannel('pgn-cw');
  const { listener, errors } = listenerRig({ applicationName: app });
  const a = uniqueChannel('cwa');
  const b = uniqueChannel('cwb');
  const consumer = `c_${a}`;
  const named = collect();
  const other = collect();
  const locker = await connect();
  try {
    await listener.start();
    await listener.subscribe(a, named.handler, { durable: { consumer, startAt: 'now', schema } });
    await listener.subscribe(b, other.handler, { durable: { after: 'now', schema } });
    // Hold the consumer's row: its next cursor write waits for the lock.
    await locker.query('BEGIN');
    await locker.query(`SELECT 1 FROM "${schema}".consumers WHERE name = $1 FOR UPDATE`, [
      consumer,
    ]);
    await appendDurable(pool, a, 'handled', schema);
    await named.wait('handled');
    await waitFor(
      async () => {
        const { rows } = await pool.query(
          "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
          [app],
        );
        return rows.length > 0;
      },
      { message: 'the cursor write waiting for the lock' },
    );
    // Too large for its commit wake-up: delivered only by a journal read.
    const large = 'x'.repeat(10_000);
    await appendDurable(pool, b, large, schema);
    await other.wait(large);
    await locker.query('COMMIT');
    const handled = named.got[0]?.cursor as string;
    await waitFor(async () => ((await loadCursor(pool, consumer, { schema })) ?? '') >= handled, {
      message: 'the cursor stored once the lock is released',
    });
    assert.deepEqual(errors, []);
  } finally {
    await locker.query('ROLLBACK').catch(() => undefined);
    await locker.end();
    await listener.stop();
  }
});

test('a writer connection the server closed is replaced at the next write; stop() closes it', async () => {
  const app = uniqueChannel('pgn-cw');
  const { listener, errors } = listenerRig({ applicationName: app });
  const channel = uniqueChannel('cwr');
  const consumer = `c_${channel}`;
  const box = collect();
  try {
    await listener.start();
    const sub = await listener.subscribe(channel, box.handler, {
      durable: { consumer, startAt: 'now', schema },
    });
    await appendDurable(pool, channel, 'one', schema);
    await box.wait('one');
    const first = await writerPid(app, listener.pid);
    assert.ok(await terminate(first));
    await waitFor(async () => !(await backendPids(app)).includes(first), {
      message: 'the terminated writer gone',
    });
    await appendDurable(pool, channel, 'two', schema);
    await box.wait('two');
    await sub.unsubscribe(); // its final cursor write goes on in the background
    const last = box.got[1]?.cursor;
    await waitFor(async () => (await loadCursor(pool, consumer, { schema })) === last, {
      message: `the cursor ${last} stored on a new writer connection`,
    });
    assert.deepEqual(errors, []);
  } finally {
    await listener.stop();
  }
  await waitFor(async () => (await backendPids(app)).length === 0, {
    message: 'no connection left after stop()',
  });
});

test('a consumer subscribed again at once (unsubscribe not awaited) starts after what it handled', async () => {
  const { listener, errors } = listenerRig({ decode: 'text' });
  const channel = uniqueChannel('cwagain');
  const consumer = `c_${channel}`;
  const first = collect();
  try {
    await listener.start();
    const sub = await listener.subscribe(channel, first.handler, {
      durable: { consumer, startAt: 'now', schema },
    });
    for (const payload of ['1', '2', '3']) await appendDurable(pool, channel, payload, schema);
    await first.atLeast(3);
    const leaving = sub.unsubscribe();
    const again = collect();
    await listener.subscribe(channel, again.handler, { durable: { consumer, schema } });
    await appendDurable(pool, channel, '4', schema);
    await again.wait('4');
    assert.deepEqual(again.raws(), ['4'], 'nothing handled before is handled again');
    await leaving;
    assert.deepEqual(errors, []);
  } finally {
    await listener.stop();
  }
});

test('a cursor write on a link gone silent fails after connectTimeoutMs and is stored on a new connection', async () => {
  const server = new URL(databaseUrl());
  const proxy = await startProxy({
    targetHost: server.hostname,
    targetPort: Number(server.port || 5432),
  });
  // The listener's own connection is direct; the cursor writer's (the second) goes through the proxy.
  let made = 0;
  const { listener, errors } = listenerRig({
    decode: 'text',
    connectTimeoutMs: 2_000,
    connection: () =>
      new pg.Client({
        connectionString: made++ === 0 ? databaseUrl() : proxy.url(databaseUrl()),
      }),
  });
  const channel = uniqueChannel('cwsilent');
  const consumer = `c_${channel}`;
  const box = collect();
  const gate = deferred();
  // At or past: with nothing waiting, the stored cursor may move on to the read position.
  const stored = (cursor: string | undefined, message: string) =>
    waitFor(async () => ((await loadCursor(pool, consumer, { schema })) ?? '') >= (cursor ?? '~'), {
      timeoutMs: 15_000,
      message,
    });
  try {
    await listener.start();
    const sub = await listener.subscribe(
      channel,
      async (n) => {
        box.handler(n);
        if (n.raw === 'held') await gate.promise;
      },
      { durable: { consumer, startAt: 'now', schema } },
    );
    await appendDurable(pool, channel, 'first', schema);
    await box.wait('first');
    await stored(box.got[0]?.cursor, 'the first cursor, through the proxy');
    await appendDurable(pool, channel, 'held', schema);
    await box.wait('held');
    proxy.stall(); // the writer's connection goes silent, without a reset
    gate.resolve(); // its acknowledgement makes a cursor write, which the link swallows
    proxy.resume(); // new connections get through again; the silent one stays silent
    await stored(box.got[1]?.cursor, 'the held cursor, on a new connection');
    await sub.unsubscribe();
    assert.deepEqual(errors, []);
  } finally {
    gate.resolve();
    await listener.stop();
    await proxy.close();
  }
});

test('a catch-up reads ahead while its cursor writes are blocked, and hands over no more than MAX_UNSTORED past the stored cursor', async () => {
  const channel = uniqueChannel('cwu');
  const consumer = `c_${channel}`;
  const total = 5_000;
  await pool.query(
    `INSERT INTO "${schema}".journal (channel, payload) SELECT $1, i::text FROM generate_series(1, $2::int) AS i`,
    [channel, total],
  );
  await saveCursor(pool, consumer, START_CURSOR, { schema });
  let reads = 0;
  const { listener, errors } = listenerRig({
    decode: 'text',
    connection: () => {
      const client = new pg.Client({ connectionString: databaseUrl() });
      const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
      (client as unknown as { query: unknown }).query = (...args: unknown[]) => {
        const result = query(...args);
        if (isJournalRead(args[0]))
          void result.then(
            () => reads++,
            () => undefined,
          );
        return result;
      };
      return client;
    },
  });
  const box = collect();
  const locker = await connect();
  try {
    // Hold the consumer's row: no cursor write can store anything until COMMIT.
    await locker.query('BEGIN');
    await locker.query(`SELECT 1 FROM "${schema}".consumers WHERE name = $1 FOR UPDATE`, [
      consumer,
    ]);
    await listener.start();
    await listener.subscribe(channel, box.handler, { durable: { consumer, schema } });
    await box.atLeast(MAX_UNSTORED);
    // Pages of 1 000: two handed over, the third read while a write waited, and the fourth
    // read while the third waits for room. A hand-over that did not wait would have taken them.
    await waitFor(() => reads >= 4, { message: 'four journal reads answered' });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(box.got.length, MAX_UNSTORED, 'handed over past the stored cursor');
    await locker.query('COMMIT');
    await box.atLeast(total);
    assert.deepEqual(
      box.raws(),
      Array.from({ length: total }, (_, i) => String(i + 1)),
    );
    assert.deepEqual(errors, []);
  } finally {
    await locker.query('ROLLBACK').catch(() => undefined);
    await locker.end();
    await listener.stop();
  }
});
