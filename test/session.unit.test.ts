/**
 * Server-less unit tests of the session's pure parts: the per-turn clock of the notification
 * path (connect.ts; the bug class of a cached reading: a stale time), the reconnect loop and
 * its backoff (reconnect.ts, with fake attempts). The session's connection handling is tested
 * on real servers (listener, resilience tests).
 */
import assert from 'node:assert/strict';
import { describe, mock, test } from 'node:test';
import type pg from 'pg';
import { clock } from '../src/connect.js';
import { ErrorCode, type PgNotifyError } from '../src/errors.js';
import { Backoff, backoffDelay, type ReconnectSteps, reconnect } from '../src/reconnect.js';

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

describe('reconnect()', () => {
  const policy = { minDelayMs: 1, maxDelayMs: 2, maxAttempts: 3 };
  const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });

  function steps(outcomes: (pg.Client | Error)[]) {
    const log: string[] = [];
    let failure: PgNotifyError | undefined;
    const fake: ReconnectSteps = {
      active: () => failure === undefined,
      reconnecting: (attempt, delayMs, cause) =>
        log.push(`attempt ${attempt} after ${delayMs > 0 ? 'a delay' : 'none'} (${cause.message})`),
      connect: async () => {
        const next = outcomes.shift();
        if (next === undefined || next instanceof Error) throw next ?? refused;
        return next;
      },
      fail: (error) => {
        failure = error;
      },
    };
    return { fake, log, failure: () => failure };
  }

  test('the first attempt at once, then with a delay; resolves with the client that connects', async () => {
    const client = {} as pg.Client;
    const { fake, log } = steps([refused, client]);
    const result = await reconnect(policy, new Error('lost'), fake, new Backoff());
    assert.equal(result, client);
    assert.deepEqual(log, [
      'attempt 1 after none (lost)',
      'attempt 2 after a delay (connect ECONNREFUSED)',
    ]);
  });

  test('gives up after maxAttempts: "gave up reconnecting after 3 attempts", retryable', async () => {
    const { fake, failure } = steps([refused, refused, refused, refused]);
    assert.equal(await reconnect(policy, new Error('lost'), fake, new Backoff()), undefined);
    assert.equal(failure()?.code, ErrorCode.CONNECTION_FAILED);
    assert.match(failure()?.message ?? '', /^gave up reconnecting after 3 attempts: /);
    assert.equal(failure()?.retryable, true);
    const one = steps([refused]);
    await reconnect({ ...policy, maxAttempts: 1 }, new Error('lost'), one.fake, new Backoff());
    assert.match(one.failure()?.message ?? '', /^gave up reconnecting after 1 attempt: /);
  });

  test('an error no retry cures fails at once, as it is', async () => {
    const badPassword = Object.assign(new Error('password authentication failed'), {
      code: '28P01',
    });
    const { fake, failure, log } = steps([badPassword]);
    await reconnect(policy, new Error('lost'), fake, new Backoff());
    assert.equal(log.length, 1);
    assert.equal(failure()?.sqlState, '28P01');
    assert.equal(failure()?.retryable, false);
  });

  test('Backoff.cancel() ends a wait at once; the loop then stops without failing', async () => {
    const backoff = new Backoff();
    const { fake, failure } = steps([refused, refused]);
    const started = Date.now();
    const loop = reconnect(
      { ...policy, minDelayMs: 60_000, maxDelayMs: 60_000 },
      refused,
      {
        ...fake,
        reconnecting: (attempt) => {
          if (attempt === 2) queueMicrotask(() => backoff.cancel());
        },
      },
      backoff,
    );
    assert.equal(await loop, undefined);
    assert.ok(Date.now() - started < 10_000, 'not the 60 s delay');
    assert.equal(failure(), undefined);
  });
});
