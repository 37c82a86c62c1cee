/**
 * Unit tests of src/runner.ts: the HandlerRunner (concurrency, ordering, error isolation).
 * No database needed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HandlerRunner, type Source } from '../src/runner.js';
import { deferred, flush } from './helpers/async.js';

class ArraySource<N> implements Source<N> {
  readonly items: N[];
  constructor(items: N[] = []) {
    this.items = [...items];
  }
  take(): N | undefined {
    return this.items.shift();
  }
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

/** An async handler gated per item, counting how many run at once. */
function gatedHandler(count: number) {
  const gates = new Map(range(count).map((i) => [i, deferred()]));
  const state = { current: 0, max: 0, started: [] as number[], finished: [] as number[] };
  const handler = async (item: number): Promise<void> => {
    state.started.push(item);
    state.current++;
    state.max = Math.max(state.max, state.current);
    try {
      await gates.get(item)?.promise;
    } finally {
      state.current--;
      state.finished.push(item);
    }
  };
  const open = (item: number): void => gates.get(item)?.resolve();
  return { handler, state, open };
}

describe('HandlerRunner', () => {
  test('concurrency 1 runs one at a time in arrival order', async () => {
    const { handler, state, open } = gatedHandler(5);
    const runner = new HandlerRunner(handler, 1, new ArraySource(range(5)), assert.fail);
    runner.pump();
    assert.deepEqual(state.started, [1]);
    assert.equal(runner.inFlight, 1);
    assert.equal(runner.canRunNow(), false);
    // Opening later gates first must not let a later item overtake an earlier one.
    for (const item of [5, 4, 3, 2]) open(item);
    await flush();
    assert.deepEqual(state.started, [1]);
    open(1);
    await runner.idle();
    await flush();
    assert.deepEqual(state.started, [1, 2, 3, 4, 5]);
    assert.deepEqual(state.finished, [1, 2, 3, 4, 5]);
    assert.equal(state.max, 1);
    assert.equal(runner.inFlight, 0);
    assert.equal(runner.canRunNow(), true);
  });

  test('concurrency N runs at most N at once, and reaches N', async () => {
    const n = 3;
    const total = 10;
    const { handler, state, open } = gatedHandler(total);
    const runner = new HandlerRunner(handler, n, new ArraySource(range(total)), assert.fail);
    runner.pump();
    assert.deepEqual(state.started, [1, 2, 3]);
    assert.equal(state.current, n);
    assert.equal(runner.inFlight, n);
    // Finish items in an order unrelated to arrival; after each, N run again while items remain.
    for (const item of [2, 3, 1, 6, 4, 5, 9, 7, 10, 8]) {
      assert.ok(state.started.includes(item), `item ${item} should have started`);
      open(item);
      await flush();
      const remaining = total - state.finished.length;
      assert.equal(state.current, Math.min(n, remaining));
      assert.ok(state.current <= n);
    }
    await runner.idle();
    assert.equal(state.max, n);
    assert.deepEqual(state.started, range(total)); // started in arrival order
    assert.equal(state.finished.length, total);
    assert.notDeepEqual(state.finished, range(total)); // but finished as released
  });

  test('concurrency 0 starts every item at once, not awaiting any', async () => {
    const total = 10;
    const { handler, state, open } = gatedHandler(total);
    const runner = new HandlerRunner(handler, 0, new ArraySource(range(total)), assert.fail);
    assert.equal(runner.canRunNow(), true);
    runner.pump();
    assert.deepEqual(state.started, range(total));
    assert.equal(state.current, total);
    assert.equal(runner.inFlight, total);
    assert.equal(runner.canRunNow(), true);
    for (const item of range(total)) open(item);
    await runner.idle();
    assert.equal(runner.inFlight, 0);
    assert.equal(state.finished.length, total);
  });

  test('a synchronous handler at concurrency 1 runs inline', () => {
    const handled: number[] = [];
    const source = new ArraySource<number>();
    const runner = new HandlerRunner((item: number) => handled.push(item), 1, source, assert.fail);
    runner.run(7);
    assert.deepEqual(handled, [7]); // ran before run() returned
    source.items.push(8, 9, 10);
    runner.pump();
    assert.deepEqual(handled, [7, 8, 9, 10]); // all drained before pump() returned
    assert.equal(runner.inFlight, 0);
    assert.equal(source.items.length, 0);
  });

  test('a synchronous throw and an async rejection go to fail; the runner continues', async () => {
    const boom = new Error('sync boom');
    const bang = new Error('async bang');
    const handled: number[] = [];
    const failures: [unknown, number][] = [];
    const handler = (item: number): unknown => {
      handled.push(item);
      if (item === 1) throw boom;
      if (item === 2) return Promise.reject(bang);
      if (item === 3) return Promise.resolve();
      return undefined;
    };
    for (const concurrency of [0, 1, 2]) {
      handled.length = 0;
      failures.length = 0;
      const runner = new HandlerRunner(
        handler,
        concurrency,
        new ArraySource([1, 2, 3, 4, 1, 5]),
        (error, item) => failures.push([error, item]),
      );
      runner.pump();
      await runner.idle();
      await flush();
      assert.deepEqual(handled, [1, 2, 3, 4, 1, 5], `concurrency ${concurrency}`);
      assert.deepEqual(
        failures.map(([error, item]) => [error, item]).sort((a, b) => Number(a[1]) - Number(b[1])),
        [
          [boom, 1],
          [boom, 1],
          [bang, 2],
        ],
        `concurrency ${concurrency}`,
      );
      assert.equal(runner.inFlight, 0);
    }
  });

  test('idle() resolves only after every in-flight call settled', async () => {
    const { handler, open } = gatedHandler(3);
    const runner = new HandlerRunner(handler, 2, new ArraySource([1, 2, 3]), assert.fail);
    assert.equal(await Promise.race([runner.idle().then(() => 'idle'), flush()]), 'idle');
    runner.pump();
    let idle = false;
    const waiting = runner.idle().then(() => {
      idle = true;
    });
    open(1);
    await flush();
    assert.equal(idle, false); // 2 and now 3 are in flight
    assert.equal(runner.inFlight, 2);
    open(3);
    await flush();
    assert.equal(idle, false); // 2 still in flight
    open(2);
    await waiting;
    assert.equal(idle, true);
    assert.equal(runner.inFlight, 0);
  });

  test('a rejection counts as settled for idle()', async () => {
    const failures: unknown[] = [];
    const gate = deferred();
    const runner = new HandlerRunner(
      () => gate.promise,
      1,
      new ArraySource([1]),
      (error) => failures.push(error),
    );
    runner.pump();
    const waiting = runner.idle();
    gate.reject(new Error('late'));
    await waiting;
    assert.equal(failures.length, 1);
    assert.equal(runner.inFlight, 0);
  });

  test('a non-Promise thenable is awaited like a promise', async () => {
    let settle!: () => void;
    const thenable = {
      // biome-ignore lint/suspicious/noThenProperty: a non-Promise thenable, on purpose
      then(onFulfilled: () => void): void {
        settle = onFulfilled;
      },
    };
    const source = new ArraySource([1, 2]);
    const handled: number[] = [];
    const runner = new HandlerRunner(
      (item: number) => {
        handled.push(item);
        return item === 1 ? thenable : undefined;
      },
      1,
      source,
      assert.fail,
    );
    runner.pump();
    assert.deepEqual(handled, [1]);
    assert.equal(runner.inFlight, 1);
    settle();
    assert.deepEqual(handled, [1, 2]);
    assert.equal(runner.inFlight, 0);
  });
});
