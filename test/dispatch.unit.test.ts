/**
 * Unit tests of src/dispatch.ts: the HandlerRunner (concurrency, ordering, error isolation)
 * and the Router (actions, dispatchers, @handles). No database needed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  defaultDispatch,
  HandlerRunner,
  handles,
  Router,
  type Source,
  type UnroutedReason,
} from '../src/dispatch.js';
import { ErrorCode, PgNotifyError } from '../src/errors.js';

class ArraySource<N> implements Source<N> {
  readonly items: N[];
  constructor(items: N[] = []) {
    this.items = [...items];
  }
  take(): N | undefined {
    return this.items.shift();
  }
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every queued promise callback run (not a sleep: nothing here waits on time). */
function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
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

describe('defaultDispatch', () => {
  test('reads { action, data }', () => {
    assert.deepEqual(defaultDispatch({ action: 'new_user', data: { id: 1 } }), [
      'new_user',
      { id: 1 },
    ]);
    assert.deepEqual(defaultDispatch({ action: 'ping' }), ['ping', undefined]);
    assert.deepEqual(defaultDispatch({ action: '', data: 0 }), ['', 0]);
  });

  test('anything else is not routable', () => {
    for (const payload of [
      null,
      undefined,
      'new_user',
      42,
      [],
      ['new_user', 1],
      { data: 1 },
      { action: 5, data: 1 },
      { action: null },
    ]) {
      assert.equal(defaultDispatch(payload), undefined, JSON.stringify(payload));
    }
  });
});

interface Note {
  readonly id: number;
}

/** A router with recorded unrouted and fail calls. */
function makeRouter(
  dispatch = defaultDispatch as (
    payload: unknown,
    n: Note,
  ) => readonly [string, unknown] | undefined,
) {
  const unrouted: [UnroutedReason, Note, unknown][] = [];
  const failed: [unknown, Note, string][] = [];
  const router = new Router<unknown, Note>(
    dispatch,
    (reason, notification, error) => unrouted.push([reason, notification, error]),
    (error, notification, action) => failed.push([error, notification, action]),
  );
  return { router, unrouted, failed };
}

describe('Router', () => {
  test('routes { action, data } to the action handlers with the notification', () => {
    const { router, unrouted, failed } = makeRouter();
    const calls: [unknown, Note][] = [];
    router.on('new_user', (data, n) => calls.push([data, n]));
    const note = { id: 1 };
    assert.equal(router.handle({ action: 'new_user', data: { name: 'ann' } }, note), undefined);
    assert.deepEqual(calls, [[{ name: 'ann' }, note]]);
    assert.equal(calls[0]?.[1], note);
    assert.deepEqual(unrouted, []);
    assert.deepEqual(failed, []);
  });

  test('a custom dispatch maps payloads to [action, data]', () => {
    const seen: [unknown, Note][] = [];
    const { router, unrouted } = makeRouter((payload, n) => {
      seen.push([payload, n]);
      const [action, ...rest] = String(payload).split(':');
      return [action ?? '', rest.join(':')];
    });
    const calls: unknown[] = [];
    router.on('greet', (data) => calls.push(data));
    router.handle('greet:ann:x', { id: 2 });
    assert.deepEqual(calls, ['ann:x']);
    assert.deepEqual(seen, [['greet:ann:x', { id: 2 }]]);
    assert.deepEqual(unrouted, []);
  });

  test('many handlers per action run in registration order', () => {
    const { router } = makeRouter();
    const order: string[] = [];
    router
      .on('a', () => order.push('first'))
      .on('b', () => order.push('other action'))
      .on('a', () => order.push('second'))
      .on('a', () => order.push('third'));
    router.handle({ action: 'a' }, { id: 1 });
    assert.deepEqual(order, ['first', 'second', 'third']);
    assert.deepEqual(router.actions(), ['a', 'b']);
  });

  test('off(action, handler) removes one handler, off(action) all of them', () => {
    const { router, unrouted } = makeRouter();
    const order: string[] = [];
    const one = (): void => {
      order.push('one');
    };
    const two = (): void => {
      order.push('two');
    };
    router.on('a', one).on('a', two);
    router.off('a', one);
    router.handle({ action: 'a' }, { id: 1 });
    assert.deepEqual(order, ['two']);
    router.off('a', one); // not registered any more: no effect
    router.handle({ action: 'a' }, { id: 2 });
    assert.deepEqual(order, ['two', 'two']);
    router.on('a', one);
    router.off('a');
    assert.deepEqual(router.actions(), []);
    router.handle({ action: 'a' }, { id: 3 });
    assert.deepEqual(order, ['two', 'two']);
    assert.deepEqual(
      unrouted.map(([reason, n]) => [reason, n.id]),
      [['no-handler', 3]],
    );
    // Removing the last handler one by one also forgets the action.
    router.on('b', one).off('b', one);
    assert.deepEqual(router.actions(), []);
  });

  test('a throwing dispatch is unrouted "rejected" with the error', () => {
    const boom = new Error('cannot dispatch');
    const { router, unrouted, failed } = makeRouter(() => {
      throw boom;
    });
    router.on('a', () => assert.fail('must not run'));
    const note = { id: 1 };
    assert.equal(router.handle({ action: 'a' }, note), undefined);
    assert.deepEqual(unrouted, [['rejected', note, boom]]);
    assert.deepEqual(failed, []);
  });

  test('an undefined dispatch result is unrouted "rejected" without an error', () => {
    const { router, unrouted } = makeRouter();
    router.on('a', () => assert.fail('must not run'));
    const note = { id: 1 };
    router.handle('plain text', note);
    router.handle({ data: 1 }, note);
    assert.deepEqual(unrouted, [
      ['rejected', note, undefined],
      ['rejected', note, undefined],
    ]);
  });

  test('an action without handlers is unrouted "no-handler"', () => {
    const { router, unrouted, failed } = makeRouter();
    router.on('known', () => assert.fail('must not run'));
    const note = { id: 9 };
    assert.equal(router.handle({ action: 'unknown', data: 1 }, note), undefined);
    assert.deepEqual(unrouted, [['no-handler', note, undefined]]);
    assert.deepEqual(failed, []);
  });

  test('a throwing handler goes to fail and the next handler still runs', () => {
    const { router, failed, unrouted } = makeRouter();
    const boom = new Error('handler broke');
    const order: string[] = [];
    router
      .on('a', () => {
        order.push('first');
        throw boom;
      })
      .on('a', () => order.push('second'));
    const note = { id: 4 };
    router.handle({ action: 'a' }, note);
    assert.deepEqual(order, ['first', 'second']);
    assert.deepEqual(failed, [[boom, note, 'a']]);
    assert.deepEqual(unrouted, []);
  });

  test('async handlers: handle() resolves once all settled, rejections go to fail', async () => {
    const { router, failed } = makeRouter();
    const gate = deferred();
    const bang = new Error('async broke');
    const order: string[] = [];
    router
      .on('a', async () => {
        await gate.promise;
        order.push('slow');
      })
      .on('a', async () => {
        order.push('rejecting');
        throw bang;
      })
      .on('a', () => order.push('sync'));
    const note = { id: 5 };
    const pending = router.handle({ action: 'a' }, note);
    assert.ok(pending instanceof Promise);
    assert.deepEqual(order, ['rejecting', 'sync']); // all started without waiting
    let settled = false;
    void pending.then(() => {
      settled = true;
    });
    await flush();
    assert.equal(settled, false);
    gate.resolve();
    await pending;
    assert.deepEqual(order, ['rejecting', 'sync', 'slow']);
    assert.deepEqual(failed, [[bang, note, 'a']]);
  });

  test('on() refuses a non-string action or a non-function handler', () => {
    const { router } = makeRouter();
    assert.throws(() => router.on(5 as unknown as string, () => {}), {
      code: ErrorCode.INVALID_OPTION,
    });
    assert.throws(
      () => router.on('a', 'handler' as unknown as () => void),
      (error: unknown) => error instanceof PgNotifyError && error.code === ErrorCode.INVALID_OPTION,
    );
    assert.deepEqual(router.actions(), []);
  });
});

describe('@handles and register()', () => {
  class Greeter {
    readonly greeted: unknown[] = [];
    readonly gone: unknown[] = [];
    constructor(readonly name: string) {}

    @handles('new_user')
    greet(data: unknown): void {
      this.greeted.push([this.name, data]);
    }

    @handles('delete_user')
    @handles('ban_user')
    bye(data: unknown): void {
      this.gone.push([this.name, data]);
    }

    notAHandler(): void {
      assert.fail('not decorated');
    }
  }

  test('register(instance) routes decorated methods with `this` bound', () => {
    const { router, unrouted } = makeRouter();
    const a = new Greeter('a');
    const b = new Greeter('b');
    router.register(a).register(b);
    assert.deepEqual(router.actions().sort(), ['ban_user', 'delete_user', 'new_user']);
    router.handle({ action: 'new_user', data: 1 }, { id: 1 });
    router.handle({ action: 'ban_user', data: 2 }, { id: 2 });
    router.handle({ action: 'delete_user', data: 3 }, { id: 3 });
    assert.deepEqual(a.greeted, [['a', 1]]);
    assert.deepEqual(b.greeted, [['b', 1]]);
    assert.deepEqual(a.gone.sort(), [
      ['a', 2],
      ['a', 3],
    ]);
    assert.deepEqual(unrouted, []);
  });

  test('register() finds methods marked without decorator metadata (tsc output on Node 20)', () => {
    // tsc passes `context.metadata === undefined` when Symbol.metadata is missing; handles()
    // then marks the method itself. Apply the decorator by hand the same way.
    class Plain {
      readonly seen: unknown[] = [];
      hello(data: unknown): void {
        this.seen.push(data);
      }
    }
    handles('hello')(Plain.prototype.hello, {
      kind: 'method',
      name: 'hello',
      metadata: undefined,
    } as unknown as ClassMethodDecoratorContext);
    const { router, unrouted } = makeRouter();
    const instance = new Plain();
    router.register(instance);
    assert.deepEqual(router.actions(), ['hello']);
    router.handle({ action: 'hello', data: 42 }, { id: 1 });
    assert.deepEqual(instance.seen, [42]);
    assert.deepEqual(unrouted, []);
  });

  /** Runs `fn` with Symbol.metadata defined (as a user polyfill or a newer runtime would). */
  function withSymbolMetadata(fn: () => void): void {
    const symbolCtor = Symbol as unknown as { metadata?: symbol };
    const had = Object.hasOwn(Symbol, 'metadata');
    if (!had) {
      Object.defineProperty(Symbol, 'metadata', {
        value: Symbol.for('Symbol.metadata'),
        configurable: true,
      });
    }
    try {
      fn();
    } finally {
      if (!had) delete symbolCtor.metadata;
    }
  }

  test('register() reads decorator metadata when Symbol.metadata exists', () => {
    withSymbolMetadata(() => {
      // Defined here so the decorators run while Symbol.metadata is present.
      class Jobs {
        readonly done: unknown[] = [];
        @handles('run')
        run(data: unknown): void {
          this.done.push(data);
        }
      }
      const { router, unrouted } = makeRouter();
      const jobs = new Jobs();
      router.register(jobs);
      assert.deepEqual(router.actions(), ['run']);
      router.handle({ action: 'run', data: 'x' }, { id: 1 });
      assert.deepEqual(jobs.done, ['x']);
      assert.deepEqual(unrouted, []);
    });
  });

  test("a subclass's @handles do not leak into its parent or sibling classes", () => {
    withSymbolMetadata(() => {
      const calls: string[] = [];
      class Base {
        @handles('a')
        a(): void {
          calls.push(`a on ${this.constructor.name}`);
        }
      }
      class Child extends Base {
        @handles('b')
        b(): void {
          calls.push('Child.b');
        }
      }
      class Sibling extends Base {
        b(): void {
          calls.push('Sibling.b, which is not a handler');
        }
      }
      const actionsOf = (instance: object): string[] => {
        const { router } = makeRouter();
        router.register(instance);
        router.handle({ action: 'a' }, { id: 1 });
        router.handle({ action: 'b' }, { id: 2 });
        return router.actions().sort();
      };
      assert.deepEqual(actionsOf(new Child()), ['a', 'b']);
      assert.deepEqual(actionsOf(new Base()), ['a']);
      assert.deepEqual(actionsOf(new Sibling()), ['a']);
      assert.deepEqual(calls, ['a on Child', 'Child.b', 'a on Base', 'a on Sibling']);
    });
  });
});
