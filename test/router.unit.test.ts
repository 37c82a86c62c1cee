/**
 * Unit tests of src/router.ts: the Router (actions, dispatchers, @handles) without a
 * listener. No database needed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ErrorCode, PgNotifyError } from '../src/errors.js';
import { defaultDispatch, handles, Router, routeNotification } from '../src/router.js';
import type { UnroutedReason } from '../src/types.js';
import { deferred, flush } from './helpers/async.js';

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
    assert.equal(
      routeNotification(router, { action: 'new_user', data: { name: 'ann' } }, note),
      undefined,
    );
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
    routeNotification(router, 'greet:ann:x', { id: 2 });
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
    routeNotification(router, { action: 'a' }, { id: 1 });
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
    routeNotification(router, { action: 'a' }, { id: 1 });
    assert.deepEqual(order, ['two']);
    router.off('a', one); // not registered any more: no effect
    routeNotification(router, { action: 'a' }, { id: 2 });
    assert.deepEqual(order, ['two', 'two']);
    router.on('a', one);
    router.off('a');
    assert.deepEqual(router.actions(), []);
    routeNotification(router, { action: 'a' }, { id: 3 });
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
    assert.equal(routeNotification(router, { action: 'a' }, note), undefined);
    assert.deepEqual(unrouted, [['rejected', note, boom]]);
    assert.deepEqual(failed, []);
  });

  test('an undefined dispatch result is unrouted "rejected" without an error', () => {
    const { router, unrouted } = makeRouter();
    router.on('a', () => assert.fail('must not run'));
    const note = { id: 1 };
    routeNotification(router, 'plain text', note);
    routeNotification(router, { data: 1 }, note);
    assert.deepEqual(unrouted, [
      ['rejected', note, undefined],
      ['rejected', note, undefined],
    ]);
  });

  test('an action without handlers is unrouted "no-handler"', () => {
    const { router, unrouted, failed } = makeRouter();
    router.on('known', () => assert.fail('must not run'));
    const note = { id: 9 };
    assert.equal(routeNotification(router, { action: 'unknown', data: 1 }, note), undefined);
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
    routeNotification(router, { action: 'a' }, note);
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
    const pending = routeNotification(router, { action: 'a' }, note);
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
    routeNotification(router, { action: 'new_user', data: 1 }, { id: 1 });
    routeNotification(router, { action: 'ban_user', data: 2 }, { id: 2 });
    routeNotification(router, { action: 'delete_user', data: 3 }, { id: 3 });
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
    routeNotification(router, { action: 'hello', data: 42 }, { id: 1 });
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
      routeNotification(router, { action: 'run', data: 'x' }, { id: 1 });
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
        routeNotification(router, { action: 'a' }, { id: 1 });
        routeNotification(router, { action: 'b' }, { id: 2 });
        return router.actions().sort();
      };
      assert.deepEqual(actionsOf(new Child()), ['a', 'b']);
      assert.deepEqual(actionsOf(new Base()), ['a']);
      assert.deepEqual(actionsOf(new Sibling()), ['a']);
      assert.deepEqual(calls, ['a on Child', 'Child.b', 'a on Base', 'a on Sibling']);
    });
  });
});
