/**
 * Unit tests of src/heartbeat.ts with a fake clock and a fake query: when a heartbeat goes
 * out, the timeout that declares the connection dead, drift repair and the queue warning.
 * No database needed, no real time passes.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ErrorCode, type PgNotifyError } from '../src/errors.js';
import { Heartbeat, type Timers } from '../src/heartbeat.js';
import type { Query } from '../src/listen-set.js';
import { HEARTBEAT_SQL } from '../src/sql.js';

/** A clock that moves only when told, with the timers due by then. */
class FakeClock implements Timers {
  time = 1_000_000;
  #timers = new Map<number, { at: number; fn: () => void }>();
  #next = 1;
  now = (): number => this.time;
  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = this.#next++;
    this.#timers.set(id, { at: this.time + ms, fn });
    return id;
  };
  clearTimeout = (handle: unknown): void => {
    this.#timers.delete(handle as number);
  };
  get pending(): number {
    return this.#timers.size;
  }
  /** Moves the clock on by `ms`, firing what falls due, in order. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = [...this.#timers]
        .filter(([, t]) => t.at <= end)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      this.#timers.delete(due[0]);
      this.time = due[1].at;
      due[1].fn();
    }
    this.time = end;
  }
}

const OPTIONS = { intervalMs: 10_000, timeoutMs: 5_000, queueWarnRatio: 0.5 };

function rig(answer: () => Promise<unknown>) {
  const clock = new FakeClock();
  const sent: string[] = [];
  const query: Query = (sql) => {
    sent.push(sql);
    return answer();
  };
  let live: Query | undefined = query;
  const dead: unknown[] = [];
  const errors: PgNotifyError[] = [];
  const repairs: (readonly string[])[] = [];
  let drift = 0;
  const heartbeat = new Heartbeat(
    OPTIONS,
    {
      live: () => live,
      dead: (q, cause) => {
        assert.equal(q, query);
        dead.push(cause);
        live = undefined;
      },
      repair: (channels) => {
        repairs.push(channels);
        return drift;
      },
      error: (error) => errors.push(error as PgNotifyError),
    },
    clock,
  );
  return {
    clock,
    sent,
    dead,
    errors,
    repairs,
    heartbeat,
    setDrift(n: number) {
      drift = n;
    },
  };
}

const answered = (channels: string[], usage: number) => () =>
  Promise.resolve({ rows: [{ channels, usage }] });
/** Lets the fake query's promise callbacks run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('Heartbeat', () => {
  test('goes out after intervalMs of quiet, and again after each answer', async () => {
    const { clock, sent, heartbeat, dead } = rig(answered(['a'], 0));
    heartbeat.start();
    clock.advance(9_999);
    assert.deepEqual(sent, []);
    clock.advance(1);
    assert.deepEqual(sent, [HEARTBEAT_SQL]);
    await settle();
    clock.advance(10_000);
    assert.equal(sent.length, 2);
    await settle();
    assert.equal(dead.length, 0);
    heartbeat.stop();
    assert.equal(clock.pending, 0);
  });

  test('traffic postpones it: only quiet time counts', () => {
    const { clock, sent, heartbeat } = rig(answered([], 0));
    heartbeat.start();
    clock.advance(8_000);
    heartbeat.lastActivity = clock.now(); // a notification arrived
    clock.advance(2_000);
    assert.deepEqual(sent, [], 'only 2 s of quiet');
    clock.advance(7_999);
    assert.deepEqual(sent, []);
    clock.advance(1);
    assert.equal(sent.length, 1);
  });

  test('no answer within timeoutMs: the connection is dead (HEARTBEAT_TIMEOUT)', () => {
    const { clock, heartbeat, dead } = rig(() => new Promise(() => undefined));
    heartbeat.start();
    clock.advance(10_000);
    clock.advance(4_999);
    assert.equal(dead.length, 0);
    clock.advance(1);
    assert.equal(dead.length, 1);
    assert.equal((dead[0] as PgNotifyError).code, ErrorCode.HEARTBEAT_TIMEOUT);
    assert.equal((dead[0] as PgNotifyError).retryable, true);
    assert.equal(clock.pending, 0, 'no further heartbeat on a dead connection');
  });

  test('a failing heartbeat query: the connection is dead with that error', async () => {
    const failure = new Error('socket closed');
    const { clock, heartbeat, dead } = rig(() => Promise.reject(failure));
    heartbeat.start();
    clock.advance(10_000);
    await settle();
    assert.deepEqual(dead, [failure]);
    clock.advance(5_000);
    assert.equal(dead.length, 1, 'the timeout does not fire as well');
  });

  test('the answer is checked for drift; a drift is reported as LISTEN_MISMATCH', async () => {
    const { clock, heartbeat, repairs, errors, setDrift } = rig(answered(['a', 'b'], 0));
    heartbeat.start();
    clock.advance(10_000);
    await settle();
    assert.deepEqual(repairs, [['a', 'b']]);
    assert.equal(errors.length, 0);
    setDrift(2);
    clock.advance(10_000);
    await settle();
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.code, ErrorCode.LISTEN_MISMATCH);
    assert.match(errors[0]?.message ?? '', /2 channel/);
  });

  test('a queue fuller than queueWarnRatio is reported as QUEUE_USAGE_HIGH', async () => {
    const { clock, heartbeat, errors } = rig(answered([], '0.75' as unknown as number));
    heartbeat.start();
    clock.advance(10_000);
    await settle();
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.code, ErrorCode.QUEUE_USAGE_HIGH);
    assert.match(errors[0]?.message ?? '', /75\.0% full/);
  });

  test('disabled (heartbeat: false): nothing is ever armed', () => {
    const clock = new FakeClock();
    const heartbeat = new Heartbeat(
      false,
      {
        live: () => assert.fail('asked for the connection'),
        dead: () => assert.fail('declared dead'),
        repair: () => 0,
        error: () => undefined,
      },
      clock,
    );
    heartbeat.start();
    assert.equal(clock.pending, 0);
  });
});
