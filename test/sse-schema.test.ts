/**
 * The bridge's durable streams on a journal outside the default schema (the `schema` option):
 * ids are cursors of that journal, a stream opened with no cursor starts at that journal's
 * "now", and Last-Event-ID resumes with exactly the missed events. A bad schema name is refused
 * when the handler is created.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ErrorCode, PgNotifyError } from '../src/index.js';
import { appendDurableBatch } from '../src/journal-write.js';
import { createSseHandler } from '../src/sse.js';
import { uniqueChannel } from './helpers/db.js';
import { journalFixture, readAll } from './helpers/journal.js';
import { RawSse, type SseEvent, startBridge } from './helpers/sse.js';

const { schema, pool } = journalFixture('sse');
const CURSOR = /^\d{19}-\d{19}$/;

const write = (ch: string, payloads: string[]) => appendDurableBatch(pool, ch, payloads, schema);
const payloadsOf = (events: SseEvent[]) =>
  events
    .filter((e) => e.event === 'message' && e.data !== '')
    .map((e) => JSON.parse(e.data).payload);

describe('durable channels in a journal of another schema (option schema)', () => {
  test("events carry that journal's cursors; Last-Event-ID replays exactly the missed ones, then live", async () => {
    const ch = uniqueChannel('dsch');
    await write(ch, ['0']); // before the stream: not replayed
    const bridge = await startBridge({ channels: [ch], durable: true, schema });
    try {
      const first = await RawSse.open(bridge.port, `/events?channel=${ch}`);
      const [open] = await first.waitEvents(1);
      assert.match(open?.id ?? '', CURSOR, 'the first id names the starting point');
      await write(ch, ['1', '2', '3']);
      const got = await first.waitEvents(4);
      assert.deepEqual(payloadsOf(got), [1, 2, 3]);
      const journal = await readAll(pool, schema, 'start', { channels: [ch] });
      assert.deepEqual(
        got.slice(1).map((e) => e.id),
        journal.slice(1).map((row) => row.cursor),
        "each id is the row's cursor in this schema's journal",
      );
      first.close();

      await write(ch, ['4', '5']); // while away
      const resumed = await RawSse.open(bridge.port, `/events?channel=${ch}`, {
        'Last-Event-ID': got[1]?.id as string,
      });
      await resumed.waitEvents(5); // open + 2, 3, 4, 5
      await write(ch, ['6']);
      const events = await resumed.waitEvents(6);
      assert.deepEqual(payloadsOf(events), [2, 3, 4, 5, 6]);
      assert.ok(!events.some((e) => e.event === 'gap' || e.event === 'end'));
      resumed.close();
    } finally {
      await bridge.close();
    }
  });

  test('an invalid schema is refused with PGNOTIFY_INVALID_OPTION naming the option', async () => {
    const bridge = await startBridge({ channels: [] });
    try {
      for (const bad of ['', 'a\0b', 'x'.repeat(64), 42, null]) {
        assert.throws(
          () => createSseHandler(bridge.listener, { durable: true, schema: bad as never }),
          (e: unknown) =>
            e instanceof PgNotifyError &&
            e.code === ErrorCode.INVALID_OPTION &&
            /^option schema: expected a non-empty name/.test(e.message),
          JSON.stringify(bad),
        );
      }
      // Accepted as they are: 63 bytes, and any characters a quoted identifier holds.
      for (const good of ['y'.repeat(63), 'Mixed "quoted" name']) {
        await createSseHandler(bridge.listener, { durable: true, schema: good }).close();
      }
    } finally {
      await bridge.close();
    }
  });
});
