/**
 * One statement at a time on the listener connection: durable journal reads, LISTEN/UNLISTEN
 * batches, the heartbeat, ping and pgnotify's own queries all overlap in time, and pg must
 * never be handed a query while another is queued (its DeprecationWarning "Calling
 * client.query() when the client is already executing a query", an error in pg@9). This file
 * runs in a process of its own, so the warning, emitted once per process, is seen here.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { appendDurableBatch } from '../src/journal-write.js';
import { internalsOf } from '../src/listener.js';
import { uniqueChannel } from './helpers/db.js';
import { journalFixture } from './helpers/journal.js';
import { collect, listenerRig } from './helpers/rig.js';

const warnings: Error[] = [];
process.on('warning', (warning) => warnings.push(warning));
const overlap = () => warnings.filter((w) => /already executing a query/.test(w.message));

const { schema, pool } = journalFixture('lq');

test('durable reads, LISTEN batches, heartbeats and queries never overlap; each kind in order', async () => {
  const { listener, errors } = listenerRig({
    decode: 'text',
    heartbeat: { intervalMs: 5, timeoutMs: 5000 },
  });
  const channel = uniqueChannel('lq');
  const payloads = Array.from({ length: 3000 }, (_, i) => String(i));
  await appendDurableBatch(pool, channel, payloads, schema);
  await listener.start();
  try {
    const box = collect();
    // A buffer of 100: the replay is ~30 journal reads, each racing what follows.
    const replay = listener.subscribe(channel, box.handler, {
      durable: { after: 'start', schema },
      buffer: { max: 100 },
    });
    const session = internalsOf(listener).session;
    const done: number[] = [];
    const queries = Array.from({ length: 10 }, (_, i) =>
      session.query<{ i: number }>('SELECT $1::int AS i, pg_sleep(0.002)', [i]).then((r) => {
        done.push(r.rows[0]?.i ?? -1);
      }),
    );
    const churn: Promise<unknown>[] = [];
    for (let i = 0; i < 20; i++) {
      const plain = uniqueChannel(`lq${i}`);
      churn.push(
        listener.subscribe(plain, () => undefined).then((sub) => sub.unsubscribe()),
        session.ping(),
      );
    }
    await Promise.all([replay, ...queries, ...churn]);
    await box.atLeast(payloads.length, 'the whole backlog');
    assert.deepEqual(box.raws(), payloads);
    assert.deepEqual(
      done,
      Array.from({ length: 10 }, (_, i) => i),
    );
    assert.deepEqual(overlap(), []);
    assert.deepEqual(errors, []);
  } finally {
    await listener.stop();
  }
});
