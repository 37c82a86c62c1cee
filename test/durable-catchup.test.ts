/**
 * A durable subscription's own catch-up reads: the next page is asked for (its query on its
 * way to the server) before the current page is handed over, so the server reads it while this
 * process decodes and delivers; rows still arrive each once, in order, within the buffer.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { appendDurableBatch } from '../src/journal-write.js';
import { internalsOf } from '../src/listener.js';
import { uniqueChannel } from './helpers/db.js';
import { isJournalRead, journalFixture } from './helpers/journal.js';
import { collect, listenerRig } from './helpers/rig.js';

const { schema, pool } = journalFixture('dc');

test('the next page is sent before the current one is handed over; each row once, in order', async () => {
  const { listener, errors } = listenerRig({ decode: 'text' });
  const channel = uniqueChannel('dcatch');
  const payloads = Array.from({ length: 1500 }, (_, i) => String(i));
  await appendDurableBatch(pool, channel, payloads.slice(0, 700), schema);
  await appendDurableBatch(pool, channel, payloads.slice(700), schema);
  // The session prepares its read on its first one: done before counting, so every read
  // counted below is one statement.
  await listener.start();
  const warm = collect();
  const warmChannel = uniqueChannel('dwarm');
  await appendDurableBatch(pool, warmChannel, ['warm'], schema);
  await listener.subscribe(warmChannel, warm.handler, { durable: { after: 'start', schema } });
  await warm.atLeast(1);
  const session = internalsOf(listener).session;
  const query = session.query.bind(session);
  const events: string[] = [];
  session.query = ((text: string, values?: readonly unknown[]) => {
    if (isJournalRead(text)) events.push('read');
    return query(text, values);
  }) as typeof session.query;
  const box = collect();
  try {
    await listener.subscribe(
      channel,
      (n) => {
        events.push(`row ${n.raw}`);
        box.handler(n);
      },
      { durable: { consumer: `c_${channel}`, startAt: 'start', schema } },
    );
    await box.atLeast(payloads.length);
    assert.deepEqual(events.slice(0, 3), ['read', 'read', 'row 0']);
    assert.deepEqual(box.raws(), payloads);
    assert.deepEqual(errors, []);
  } finally {
    await listener.stop();
  }
});
