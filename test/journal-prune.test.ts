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
