/**
 * Server-less unit tests of src/session.ts: the per-turn clock of the notification path (the
 * bug class of a cached reading: a stale time) and the reconnect backoff. The session's
 * connection handling is tested on real servers (listener, resilience tests).
 */
import assert from 'node:assert/strict';
import { describe, mock, test } from 'node:test';
import { backoffDelay, clock } from '../src/session.js';

describe('clock()', () => {
  test('one reading per synchronous run, a fresh one after the next microtask checkpoint', async () => {
    let now = 1_000;
    const dateNow = mock.method(Date, 'now', () => now);
    try {
      await Promise.resolve(); // any reading cached by earlier code has expired
      assert.equal(clock(), 1_000);
      now = 2_000;
      assert.equal(clock(), 1_000, 'the same turn: the same reading');
      await Promise.resolve();
      assert.equal(clock(), 2_000, 'the next turn reads again');
      now = 3_000;
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(clock(), 3_000, 'after I/O and timers too');
      assert.equal(dateNow.mock.callCount(), 3, 'Date.now() once per turn');
    } finally {
      dateNow.mock.restore();
    }
  });

  test('never goes backwards across turns', async () => {
    let last = 0;
    for (let i = 0; i < 50; i++) {
      const t = clock();
      assert.ok(t >= last);
      last = t;
      await Promise.resolve();
    }
  });
});

describe('backoffDelay()', () => {
  test('the first retry waits about minDelayMs, doubling up to maxDelayMs, with jitter', () => {
    const low = () => 0;
    const high = () => 0.999_999;
    assert.equal(backoffDelay(2, 100, 10_000, low), 50);
    assert.equal(backoffDelay(2, 100, 10_000, high), 100);
    assert.equal(backoffDelay(4, 100, 10_000, high), 400);
    assert.equal(backoffDelay(40, 100, 10_000, high), 10_000);
    assert.equal(backoffDelay(1_000, 0, 0, high), 0, 'no NaN for huge attempts');
  });
});
