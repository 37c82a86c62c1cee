/**
 * Unit tests of src/buffer.ts, the bounded buffer on its own: FIFO order, each overflow
 * policy's outcome and `dropped` count, gap reports outside `max` and never dropped, and the
 * compaction of consumed slots. No database, no subscription.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Item, isGap, NotificationBuffer } from '../src/buffer.js';
import type { Notification, OutageGap } from '../src/types.js';

function note(payload: number): Notification<number> {
  return { channel: 'c', payload, raw: String(payload), pid: 1, receivedAt: 0 };
}

function gapReport(at: number): OutageGap {
  return {
    kind: 'gap',
    channels: ['c'],
    disconnectedAt: at,
    reconnectedAt: at + 1,
    downtimeMs: 1,
    cause: new Error('lost'),
  };
}

/** Takes everything, gaps included, as payloads and `gap@<disconnectedAt>` markers. */
function drain(buffer: NotificationBuffer<number>): (number | string)[] {
  const out: (number | string)[] = [];
  for (let item = buffer.take(true); item !== undefined; item = buffer.take(true))
    out.push(label(item));
  return out;
}

function label(item: Item<number>): number | string {
  return isGap(item) ? `gap@${item.kind === 'gap' ? item.disconnectedAt : '?'}` : item.payload;
}

describe('NotificationBuffer', () => {
  test('keeps arrival order and counts its size', () => {
    const buffer = new NotificationBuffer<number>(10, 'drop-oldest');
    for (const n of [1, 2, 3]) assert.equal(buffer.push(note(n)), 'added');
    assert.equal(buffer.size, 3);
    assert.deepEqual(drain(buffer), [1, 2, 3]);
    assert.equal(buffer.size, 0);
    assert.equal(buffer.take(true), undefined);
  });

  test("'drop-oldest' evicts the oldest notification and keeps the new one", () => {
    const buffer = new NotificationBuffer<number>(2, 'drop-oldest');
    buffer.push(note(1));
    buffer.push(note(2));
    assert.equal(buffer.push(note(3)), 'evicted');
    assert.equal(buffer.dropped, 1);
    assert.deepEqual(drain(buffer), [2, 3]);
  });

  test("'drop-newest' and 'error' refuse the new notification and keep the old ones", () => {
    for (const policy of ['drop-newest', 'error'] as const) {
      const buffer = new NotificationBuffer<number>(2, policy);
      buffer.push(note(1));
      buffer.push(note(2));
      assert.equal(buffer.push(note(3)), 'rejected', policy);
      assert.equal(buffer.dropped, 1, policy);
      assert.deepEqual(drain(buffer), [1, 2], policy);
    }
  });

  test('gap reports do not count against max and are never dropped', () => {
    const buffer = new NotificationBuffer<number>(2, 'drop-oldest');
    buffer.pushGap(gapReport(10));
    buffer.push(note(1));
    buffer.pushGap(gapReport(20));
    buffer.push(note(2));
    assert.equal(buffer.size, 4);
    // Full: the oldest notification (1) goes, both gap reports stay in their place.
    assert.equal(buffer.push(note(3)), 'evicted');
    assert.equal(buffer.push(note(4)), 'evicted');
    assert.equal(buffer.dropped, 2);
    assert.deepEqual(drain(buffer), ['gap@10', 'gap@20', 3, 4]);
  });

  test('take(false) skips gap reports; clear() empties and keeps the dropped count', () => {
    const buffer = new NotificationBuffer<number>(1, 'drop-newest');
    buffer.pushGap(gapReport(1));
    buffer.push(note(1));
    buffer.push(note(2));
    assert.equal(label(buffer.take(false) as Item<number>), 1);
    assert.equal(buffer.size, 0);
    buffer.push(note(3));
    buffer.pushGap(gapReport(2));
    buffer.clear();
    assert.equal(buffer.size, 0);
    assert.equal(buffer.take(true), undefined);
    assert.equal(buffer.dropped, 1);
    assert.equal(buffer.push(note(4)), 'added');
  });

  test('stays in order across compaction of consumed slots', () => {
    const buffer = new NotificationBuffer<number>(5000, 'drop-oldest');
    const got: number[] = [];
    let next = 0;
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 1500; i++) buffer.push(note(next++));
      for (let i = 0; i < 1200; i++) got.push((buffer.take(false) as Notification<number>).payload);
    }
    for (let item = buffer.take(false); item !== undefined; item = buffer.take(false))
      got.push((item as Notification<number>).payload);
    assert.deepEqual(
      got,
      Array.from({ length: next }, (_, i) => i),
    );
    assert.equal(buffer.dropped, 0);
  });
});
