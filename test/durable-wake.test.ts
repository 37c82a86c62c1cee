/**
 * Wake-ups that race a durable subscription's own read, made deterministic: the replay read runs
 * on the server (its snapshot taken before the commit), its result is held back from the feed
 * while a durable message commits and its wake-up reaches the listener, then released. The rule
 * under test: a wake-up during a read means "read again after this one", never "dropped" (the
 * first message after start() was lost in 9 of 300 fresh listeners before it held). And
 * `after: 'now'` given before start(): start() resolves only once 'now' is read.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { wakeChannel } from '../src/journal.js';
import { appendDurable } from '../src/journal-write.js';
import { internalsOf } from '../src/listener.js';
import { uniqueChannel } from './helpers/db.js';
import { isJournalRead, journalFixture } from './helpers/journal.js';
import { collect, listenerRig } from './helpers/rig.js';

const { schema, pool } = journalFixture('dw');

/** A gate: `wait()` blocks until `open()`. */
function gate(): { wait: Promise<void>; open(): void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { wait, open };
}

describe("'now' before start()", () => {
  test('start() resolves once the position is taken: what commits after it is delivered', async () => {
    const { listener, errors } = listenerRig({ decode: 'text' });
    const channel = uniqueChannel('dnow');
    await appendDurable(pool, channel, 'before', schema);
    const session = internalsOf(listener).session;
    const query = session.query.bind(session);
    // The head query that resolves 'now' is slow to go out: start() must wait for it anyway.
    session.query = (async (text: string, values?: readonly unknown[]) => {
      if (/^SELECT pg_catalog\.max\(seq\) AS seq/.test(text))
        await new Promise((resolve) => setTimeout(resolve, 100));
      return query(text, values);
    }) as typeof session.query;
    const box = collect();
    try {
      await listener.subscribe(channel, box.handler, { durable: { after: 'now', schema } });
      await listener.start();
      await appendDurable(pool, channel, 'after', schema);
      await box.atLeast(1, 'the message committed after start()');
      assert.deepEqual(box.raws(), ['after']);
      assert.deepEqual(errors, []);
    } finally {
      await listener.stop();
    }
  });
});

describe('a wake-up during a read', () => {
  for (const start of ['before start()', 'on a running listener'] as const) {
    test(`is read again after it (subscribed ${start})`, async () => {
      const { listener, errors } = listenerRig({ decode: 'text' });
      const channel = uniqueChannel('dwake');
      const session = internalsOf(listener).session;
      const query = session.query.bind(session);
      const ran = gate();
      const release = gate();
      let held = 0;
      // The first journal read of this listener runs on the server, then its result waits.
      session.query = (async (text: string, values?: readonly unknown[]) => {
        const result = await query(text, values);
        if (isJournalRead(text) && held++ === 0) {
          ran.open();
          await release.wait;
        }
        return result;
      }) as typeof session.query;
      const woken = collect();
      const box = collect();
      try {
        if (start === 'on a running listener') await listener.start();
        // A plain subscriber of the wake channel sees the wake-up in the same delivery loop.
        await listener.subscribe(wakeChannel(schema), woken.handler);
        const subscribed = listener.subscribe(channel, box.handler, {
          durable: { after: 'start', schema },
        });
        if (start === 'before start()') await listener.start();
        await ran.wait;
        await appendDurable(pool, channel, 'first', schema);
        await woken.atLeast(1, 'the wake-up');
        release.open();
        await subscribed;
        await box.atLeast(1, 'the message committed during the read');
        assert.deepEqual(box.raws(), ['first']);
        await appendDurable(pool, channel, 'second', schema);
        await box.atLeast(2);
        assert.deepEqual(box.raws(), ['first', 'second']);
        assert.deepEqual(errors, []);
      } finally {
        release.open();
        await listener.stop();
      }
    });
  }
});
