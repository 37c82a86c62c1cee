/**
 * Every way of consuming notifications, against the real server of the pass: `for await`,
 * `poll()`, `next()`, `once()`, action routing, handlers and their worker pool, idle ticks,
 * stop channels, `drain()`, per-channel schemas and AbortSignals.
 *
 * Notifications are sent from an admin session with `pg_notify`, each committed when `send`
 * resolves; bursts go in one transaction so they reach the listener together. "Nothing was
 * delivered" is proven with a barrier: a notification on a sentinel channel sent afterwards;
 * the server hands a session its notifications in commit order.
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import {
  createNotifier,
  ErrorCode,
  handles,
  type Listener,
  type ListenerOptions,
  type Notification,
  PgNotifyError,
  type Schema,
  type UnroutedReason,
  ValidationError,
} from '../src/index.js';
import { adminClient, databaseUrl, uniqueChannel, waitFor } from './helpers/db.js';
import { listenerRig, barrier as rigBarrier } from './helpers/rig.js';

const DEADLINE = { timeoutMs: 10_000 };

let admin: pg.Client;

before(async () => {
  admin = await adminClient();
});

after(async () => {
  await admin?.end().catch(() => undefined);
});

// ---- helpers ------------------------------------------------------------------------------

/** Sends one notification from the admin session; committed when this resolves. */
async function send(channel: string, payload = ''): Promise<void> {
  await admin.query('select pg_notify($1, $2)', [channel, payload]);
}

/** Sends several notifications in one transaction: they reach listeners as one burst. */
async function burst(items: readonly (readonly [channel: string, payload: string])[]) {
  await admin.query('BEGIN');
  try {
    for (const [channel, payload] of items) await send(channel, payload);
    await admin.query('COMMIT');
  } catch (error) {
    await admin.query('ROLLBACK');
    throw error;
  }
}

/** A started listener whose errors are collected; `await using` stops it. */
async function started(
  options: Omit<ListenerOptions, 'onError'> = {},
): Promise<Listener & { errors: Error[] } & AsyncDisposable> {
  const { listener, errors } = listenerRig(options);
  await listener.start();
  return Object.assign(listener, { errors });
}

/** Waits until every notification committed before the call has been read by `listener`. */
function barrier(listener: Listener): Promise<void> {
  return rigBarrier(listener, send);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A promise with its resolve function: a gate that handlers wait on. */
function gate(): { opened: Promise<void>; open(): void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

function code(expected: string): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof PgNotifyError, `expected a PgNotifyError, got ${String(error)}`);
    assert.equal(error.code, expected, error.message);
    return true;
  };
}

function ids(listener: Listener): (string | number)[] {
  return listener.subscribers().map((s) => s.id);
}

function listening(listener: Listener, channel: string): boolean {
  return listener.channels().find((c) => c.name === channel)?.listening === true;
}

const items = (n: number, prefix = 'm') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

// ---- for await ------------------------------------------------------------------------------

describe('for await over a subscription', () => {
  test('yields in arrival order across its channels', async () => {
    await using listener = await started();
    const [a, b] = [uniqueChannel('it_a'), uniqueChannel('it_b')];
    const feed = await listener.subscribe([a, b]);
    const sent = [
      [a, 'a1'],
      [b, 'b1'],
      [a, 'a2'],
      [b, 'b2'],
      [b, 'b3'],
      [a, 'a3'],
    ] as const;
    for (const [channel, payload] of sent) await send(channel, payload);
    const got: [string, string][] = [];
    for await (const n of feed) {
      got.push([n.channel, n.raw]);
      if (got.length === sent.length) break;
    }
    assert.deepEqual(got, sent);
    assert.deepEqual(listener.errors, []);
  });

  test('ends after the buffered items when the subscription is unsubscribed', async () => {
    await using listener = await started();
    const channel = uniqueChannel('it_unsub');
    const feed = await listener.subscribe(channel, { id: 'feed' });
    await burst(items(3).map((p) => [channel, p] as const));
    await waitFor(() => feed.buffered === 3, { ...DEADLINE, message: '3 buffered' });
    await feed.unsubscribe();
    assert.equal(feed.ended, true);
    assert.deepEqual(ids(listener), []);
    const got: string[] = [];
    for await (const n of feed) got.push(n.raw);
    assert.deepEqual(got, items(3), 'the loop drained the buffer, then ended');
  });

  test('a loop waiting for the next item ends when unsubscribed elsewhere', async () => {
    await using listener = await started();
    const channel = uniqueChannel('it_wait');
    const feed = await listener.subscribe(channel);
    const got: string[] = [];
    const loop = (async () => {
      for await (const n of feed) got.push(n.raw);
    })();
    await send(channel, 'one');
    await waitFor(() => got.length === 1, { ...DEADLINE, message: 'the first item' });
    await listener.unsubscribe(feed.id);
    await loop;
    assert.deepEqual(got, ['one']);
  });

  test('ends when the listener stops', async () => {
    const listener = await started();
    const channel = uniqueChannel('it_stop');
    const feed = await listener.subscribe(channel);
    const got: string[] = [];
    const loop = (async () => {
      for await (const n of feed) got.push(n.raw);
    })();
    try {
      await send(channel, 'before stop');
      await waitFor(() => got.length === 1, { ...DEADLINE, message: 'the first item' });
    } finally {
      await listener.stop();
    }
    await loop;
    assert.deepEqual(got, ['before stop']);
    assert.equal(feed.ended, true);
  });

  test('break unsubscribes: the subscriber and its channel are gone', async () => {
    await using listener = await started();
    const channel = uniqueChannel('it_break');
    const feed = await listener.subscribe(channel, { id: 'breaker' });
    await send(channel, 'x');
    for await (const n of feed) {
      assert.equal(n.raw, 'x');
      break;
    }
    assert.equal(feed.ended, true);
    assert.deepEqual(ids(listener), []);
    await waitFor(() => listener.channels().length === 0, { ...DEADLINE, message: 'no channel' });
  });
});

// ---- poll ---------------------------------------------------------------------------------

describe('poll()', () => {
  test('returns undefined at once when empty, then buffered items in order, then undefined', async () => {
    await using listener = await started();
    const channel = uniqueChannel('poll');
    const feed = await listener.subscribe(channel);
    const first = feed.poll();
    assert.equal(first, undefined, 'nothing yet: undefined, synchronously');
    await burst(items(4).map((p) => [channel, p] as const));
    await waitFor(() => feed.buffered === 4, { ...DEADLINE, message: '4 buffered' });
    const got = [feed.poll(), feed.poll(), feed.poll(), feed.poll()].map((n) => n?.raw);
    assert.deepEqual(got, items(4));
    assert.equal(feed.poll(), undefined);
    assert.equal(feed.buffered, 0);
  });
});

// ---- next ---------------------------------------------------------------------------------

describe('next()', () => {
  test('next({ timeoutMs }) resolves undefined when nothing arrives (an idle tick)', async () => {
    await using listener = await started();
    const feed = await listener.subscribe(uniqueChannel('next_idle'));
    assert.equal(await feed.next({ timeoutMs: 100 }), undefined);
    assert.equal(feed.ended, false, 'an idle tick does not end the subscription');
  });

  test('next() resolves with a notification that arrives later', async () => {
    await using listener = await started();
    const channel = uniqueChannel('next_later');
    const feed = await listener.subscribe(channel);
    const pending = feed.next({ timeoutMs: DEADLINE.timeoutMs });
    await send(channel, '{"later":true}');
    const n = await pending;
    assert.deepEqual(n?.payload, { later: true });
    assert.equal(n?.channel, channel);
  });

  test('next({ signal }) rejects with PGNOTIFY_ABORTED; a later notification is not lost', async () => {
    await using listener = await started();
    const channel = uniqueChannel('next_abort');
    const feed = await listener.subscribe(channel);
    const controller = new AbortController();
    const pending = feed.next({ signal: controller.signal });
    controller.abort(new Error('user gave up'));
    await assert.rejects(pending, code(ErrorCode.ABORTED));
    await assert.rejects(feed.next({ signal: controller.signal }), code(ErrorCode.ABORTED));
    await send(channel, 'after abort');
    assert.equal((await feed.next(DEADLINE))?.raw, 'after abort');
  });

  test('next() rejects with PGNOTIFY_CLOSED once the subscription ended and is empty', async () => {
    await using listener = await started();
    const channel = uniqueChannel('next_closed');
    const feed = await listener.subscribe(channel);
    await send(channel, 'last');
    await waitFor(() => feed.buffered === 1, { ...DEADLINE, message: '1 buffered' });
    await feed.unsubscribe();
    assert.equal((await feed.next())?.raw, 'last', 'buffered items are still readable');
    await assert.rejects(feed.next(), code(ErrorCode.CLOSED));
    const other = await listener.subscribe(uniqueChannel('next_closed2'));
    const waiting = assert.rejects(other.next(), code(ErrorCode.CLOSED), 'a pending next() too');
    await other.unsubscribe();
    await waiting;
  });

  test('on a handler subscription: next() rejects, poll() returns undefined', async () => {
    await using listener = await started();
    const channel = uniqueChannel('next_handler');
    const got: string[] = [];
    const sub = await listener.subscribe(channel, (n) => {
      got.push(n.raw);
    });
    await send(channel, 'to the handler');
    await waitFor(() => got.length === 1, { ...DEADLINE, message: 'the handler ran' });
    await assert.rejects(sub.next({ timeoutMs: 50 }), code(ErrorCode.NOT_ITERABLE));
    await assert.rejects(sub[Symbol.asyncIterator]().next(), code(ErrorCode.NOT_ITERABLE));
    await assert.rejects(sub.withGaps().next(), code(ErrorCode.NOT_ITERABLE));
    assert.equal(sub.ended, false, 'a refused loop does not end the subscription');
    assert.equal(sub.poll(), undefined);
    assert.deepEqual(got, ['to the handler']);
  });
});

// ---- once ---------------------------------------------------------------------------------

describe('once()', () => {
  test('resolves with the first notification passing the filter, then leaves nothing behind', async () => {
    await using listener = await started();
    const channel = uniqueChannel('once');
    const seen: string[] = [];
    const pending = listener.once(channel, {
      timeoutMs: DEADLINE.timeoutMs,
      filter: (n) => {
        seen.push(n.raw);
        return (n.payload as { id?: number }).id === 2;
      },
    });
    // once() gives no readiness signal: wait until the server confirmed its LISTEN.
    await waitFor(() => listening(listener, channel), { ...DEADLINE, message: 'LISTEN' });
    await burst([
      [channel, '{"id":1}'],
      [channel, 'not json'],
      [channel, '{"id":2,"n":"first"}'],
      [channel, '{"id":2,"n":"second"}'],
    ]);
    const n = await pending;
    assert.deepEqual(n.payload, { id: 2, n: 'first' });
    assert.deepEqual(seen.slice(0, 3), ['{"id":1}', 'not json', '{"id":2,"n":"first"}']);
    assert.deepEqual(ids(listener), [], 'no subscriber left behind');
    assert.deepEqual(listener.errors, []);
  });

  test('once() on a channel not listened to yet can be armed before the trigger is sent', async () => {
    await using listener = await started();
    for (let i = 0; i < 10; i++) {
      const channel = uniqueChannel('once_race');
      const pending = listener.once(channel, { timeoutMs: 1000 });
      await (pending as { ready?: Promise<void> }).ready;
      await send(channel, `trigger ${i}`);
      assert.equal((await pending).raw, `trigger ${i}`);
    }
  });

  test('rejects with PGNOTIFY_TIMEOUT and leaves nothing behind', async () => {
    await using listener = await started();
    const channel = uniqueChannel('once_to');
    await assert.rejects(listener.once(channel, { timeoutMs: 100 }), (error: unknown) => {
      code(ErrorCode.TIMEOUT)(error);
      assert.equal((error as PgNotifyError).channel, channel);
      return true;
    });
    assert.deepEqual(ids(listener), []);
    await waitFor(() => listener.channels().length === 0, { ...DEADLINE, message: 'no channel' });
  });

  test('rejects with PGNOTIFY_CLOSED when the listener stops first, rather than never settling', async () => {
    const listener = await started();
    const channel = uniqueChannel('once_stop');
    const pending = listener.once(channel); // no timeout, no signal
    await (pending as { ready?: Promise<void> }).ready;
    let outcome: unknown;
    pending.then(
      () => (outcome = 'resolved'),
      (error: unknown) => (outcome = error),
    );
    await listener.stop();
    await waitFor(() => outcome !== undefined, { ...DEADLINE, message: 'once() settled' });
    code(ErrorCode.CLOSED)(outcome);
    assert.equal((outcome as PgNotifyError).channel, channel);
  });

  test('rejects with PGNOTIFY_ABORTED and leaves nothing behind', async () => {
    await using listener = await started();
    const channel = uniqueChannel('once_abort');
    const controller = new AbortController();
    const pending = listener.once(channel, { signal: controller.signal });
    assert.equal(ids(listener).length, 1, 'armed');
    controller.abort();
    await assert.rejects(pending, code(ErrorCode.ABORTED));
    assert.deepEqual(ids(listener), []);
    await assert.rejects(
      listener.once(channel, { signal: controller.signal }),
      code(ErrorCode.ABORTED),
      'an already aborted signal rejects at once',
    );
    assert.deepEqual(ids(listener), []);
  });
});

// ---- route ----------------------------------------------------------------------------------

describe('route()', () => {
  test('default dispatch reads { action, data }; handlers get (data, notification)', async () => {
    await using listener = await started();
    const channel = uniqueChannel('route');
    const got: [unknown, string][] = [];
    const route = listener.route(channel);
    route.on('new_user', (data, n) => {
      got.push([data, (n as Notification).channel]);
    });
    await route.ready;
    await send(channel, JSON.stringify({ action: 'new_user', data: { id: 42 } }));
    await send(channel, JSON.stringify({ action: 'new_user' }));
    await waitFor(() => got.length === 2, { ...DEADLINE, message: '2 routed' });
    assert.deepEqual(got, [
      [{ id: 42 }, channel],
      [undefined, channel],
    ]);
    assert.deepEqual(route.actions(), ['new_user']);
    assert.deepEqual(listener.errors, []);
  });

  test('a custom dispatch maps (payload, notification) to [action, data]', async () => {
    await using listener = await started({ decode: 'text' });
    const channel = uniqueChannel('route_custom');
    const calls: [unknown, string][] = [];
    const got: string[] = [];
    const route = listener.route(channel, {
      dispatch: (payload, n) => {
        calls.push([payload, n.raw]);
        const [action, data] = String(payload).split(':');
        return action === undefined || data === undefined ? undefined : [action, data];
      },
    });
    route.on<string>('greet', (name) => {
      got.push(`hello ${name}`);
    });
    route.on<string>('part', (name) => {
      got.push(`bye ${name}`);
    });
    await route.ready;
    await burst([
      [channel, 'greet:ada'],
      [channel, 'part:ada'],
    ]);
    await waitFor(() => got.length === 2, { ...DEADLINE, message: '2 routed' });
    assert.deepEqual(got, ['hello ada', 'bye ada']);
    assert.deepEqual(calls, [
      ['greet:ada', 'greet:ada'],
      ['part:ada', 'part:ada'],
    ]);
  });

  test('many handlers per action run in registration order; off() removes them', async () => {
    await using listener = await started();
    const channel = uniqueChannel('route_many');
    const log: string[] = [];
    const unrouted: UnroutedReason[] = [];
    const route = listener.route(channel, { onUnrouted: (reason) => unrouted.push(reason) });
    const second = (data: unknown) => {
      log.push(`2:${data}`);
    };
    route
      .on('a', (data) => {
        log.push(`1:${data}`);
      })
      .on('a', second)
      .on('a', (data) => {
        log.push(`3:${data}`);
      });
    await route.ready;
    await burst([
      [channel, '{"action":"a","data":"x"}'],
      [channel, '{"action":"a","data":"y"}'],
    ]);
    await waitFor(() => log.length === 6, { ...DEADLINE, message: '6 handler calls' });
    assert.deepEqual(log, ['1:x', '2:x', '3:x', '1:y', '2:y', '3:y']);

    route.off('a', second);
    await send(channel, '{"action":"a","data":"z"}');
    await waitFor(() => log.length === 8, { ...DEADLINE, message: '2 more calls' });
    assert.deepEqual(log.slice(6), ['1:z', '3:z']);

    route.off('a');
    assert.deepEqual(route.actions(), []);
    await send(channel, '{"action":"a","data":"w"}');
    await waitFor(() => unrouted.length === 1, { ...DEADLINE, message: 'unrouted' });
    assert.deepEqual(unrouted, ['no-handler']);
    assert.equal(log.length, 8);
  });

  test('ill-formed payloads go to onUnrouted("rejected"), unknown actions to "no-handler"', async () => {
    await using listener = await started();
    const channel = uniqueChannel('route_bad');
    const unrouted: [UnroutedReason, string, unknown][] = [];
    const handled: unknown[] = [];
    const before = listener.stats().unrouted;
    const route = listener.route(channel, {
      onUnrouted: (reason, n, error) => unrouted.push([reason, n.raw, error]),
    });
    route.on('known', (data) => {
      handled.push(data);
    });
    await route.ready;
    await burst([
      [channel, 'not json at all'],
      [channel, '{"data":1}'],
      [channel, '{"action":7}'],
      [channel, '{"action":"unknown","data":2}'],
      [channel, '{"action":"known","data":3}'],
    ]);
    await waitFor(() => handled.length === 1, { ...DEADLINE, message: 'the routable one' });
    assert.deepEqual(
      unrouted.map(([reason, raw]) => [reason, raw]),
      [
        ['rejected', 'not json at all'],
        ['rejected', '{"data":1}'],
        ['rejected', '{"action":7}'],
        ['no-handler', '{"action":"unknown","data":2}'],
      ],
    );
    assert.deepEqual(handled, [3]);
    assert.equal(listener.stats().unrouted - before, 4);
    assert.deepEqual(listener.errors, []);
  });

  test('a dispatch that throws counts as rejected, with the error', async () => {
    await using listener = await started();
    const channel = uniqueChannel('route_throw');
    const unrouted: [UnroutedReason, unknown][] = [];
    const route = listener.route(channel, {
      dispatch: () => {
        throw new Error('cannot parse');
      },
      onUnrouted: (reason, _n, error) => unrouted.push([reason, error]),
    });
    await route.ready;
    await send(channel, 'anything');
    await waitFor(() => unrouted.length === 1, { ...DEADLINE, message: 'unrouted' });
    const [reason, error] = unrouted[0] ?? [];
    assert.equal(reason, 'rejected');
    assert.equal((error as Error | undefined)?.message, 'cannot parse');
  });

  test('a throwing handler goes to onError (PGNOTIFY_HANDLER_FAILED); the next one still runs', async () => {
    await using listener = await started();
    const channel = uniqueChannel('route_err');
    const ran: string[] = [];
    const route = listener.route(channel, { id: 'jobs' });
    route
      .on('go', () => {
        ran.push('thrower');
        throw new Error('handler boom');
      })
      .on('go', async () => {
        ran.push('rejecter');
        await Promise.resolve();
        throw new Error('async boom');
      })
      .on('go', () => {
        ran.push('last');
      });
    await route.ready;
    await send(channel, '{"action":"go"}');
    await send(channel, '{"action":"go"}');
    await waitFor(() => listener.errors.length === 4, { ...DEADLINE, message: '4 errors' });
    assert.deepEqual(ran, ['thrower', 'rejecter', 'last', 'thrower', 'rejecter', 'last']);
    for (const error of listener.errors) {
      code(ErrorCode.HANDLER_FAILED)(error);
      assert.equal((error as PgNotifyError).subscriberId, 'jobs');
      assert.equal((error as PgNotifyError).channel, channel);
    }
    const causes = listener.errors.map((e) => (e.cause as Error).message).sort();
    assert.deepEqual(causes, ['async boom', 'async boom', 'handler boom', 'handler boom']);
  });

  test('route.ready rejects like subscribe() would: an invalid channel', async () => {
    await using listener = await started();
    const route = listener.route('');
    await assert.rejects(route.ready, code(ErrorCode.INVALID_CHANNEL));
    assert.deepEqual(ids(listener), []);
  });

  test('route.close() unsubscribes the route', async () => {
    await using listener = await started();
    const channel = uniqueChannel('route_close');
    const got: unknown[] = [];
    const route = listener.route(channel, { id: 'closing' });
    route.on('a', (data) => {
      got.push(data);
    });
    await route.ready;
    assert.deepEqual(ids(listener), ['closing']);
    await send(channel, '{"action":"a","data":1}');
    await waitFor(() => got.length === 1, { ...DEADLINE, message: 'first routed' });
    await route.close();
    assert.deepEqual(ids(listener), []);
    await send(channel, '{"action":"a","data":2}');
    await barrier(listener);
    assert.deepEqual(got, [1]);
  });

  test('@handles methods are routed after register(instance), bound to it', async () => {
    await using listener = await started();
    const channel = uniqueChannel('route_deco');
    const log: string[] = [];
    class Users {
      prefix = 'user';
      @handles('new_user')
      greet(data: { name: string }) {
        log.push(`hi ${this.prefix} ${data.name}`);
      }
      @handles('new_user')
      @handles('delete_user')
      audit(data: { name: string }, n: Notification) {
        log.push(`audit ${n.channel === channel} ${data.name}`);
      }
      notAHandler() {
        log.push('never');
      }
    }
    const route = listener.route(channel).register(new Users());
    await route.ready;
    assert.deepEqual(route.actions().sort(), ['delete_user', 'new_user']);
    await send(channel, '{"action":"new_user","data":{"name":"ada"}}');
    await send(channel, '{"action":"delete_user","data":{"name":"bob"}}');
    await waitFor(() => log.length === 3, { ...DEADLINE, message: '3 calls' });
    assert.deepEqual(log, ['hi user ada', 'audit true ada', 'audit true bob']);
  });
});

// ---- handlers: the worker pool --------------------------------------------------------------

describe('handler concurrency', () => {
  test('concurrency 1 (default) runs async handlers one at a time, in arrival order', async () => {
    await using listener = await started();
    const channel = uniqueChannel('pool1');
    const done: string[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    await listener.subscribe(channel, async (n) => {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      await sleep(Math.floor(Math.random() * 6));
      done.push(n.raw);
      inFlight--;
    });
    await burst(items(30).map((p) => [channel, p] as const));
    await waitFor(() => done.length === 30, { ...DEADLINE, message: '30 handled' });
    assert.deepEqual(done, items(30));
    assert.equal(maxInFlight, 1);
  });

  test('a handler that is sometimes async keeps order and never overlaps (concurrency 1)', async () => {
    await using listener = await started();
    const channel = uniqueChannel('mixed');
    const began: string[] = [];
    const done: string[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const receivers: unknown[] = [];
    await listener.subscribe(channel, function (this: unknown, n) {
      receivers.push(this);
      began.push(n.raw);
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      if (Number(n.raw.slice(1)) % 3 !== 0) {
        done.push(n.raw);
        inFlight--;
        return undefined;
      }
      return sleep(2).then(() => {
        done.push(n.raw);
        inFlight--;
      });
    });
    await burst(items(30).map((p) => [channel, p] as const));
    await waitFor(() => done.length === 30, { ...DEADLINE, message: '30 handled' });
    assert.deepEqual(began, items(30));
    assert.deepEqual(done, items(30));
    assert.equal(maxInFlight, 1);
    // Called as a plain function: no internal object leaks in as `this`.
    assert.ok(receivers.every((r) => r === undefined));
  });

  test('concurrency 4: at most 4 in flight, and 4 are reached', async () => {
    await using listener = await started({ concurrency: 4 });
    const channel = uniqueChannel('pool4');
    const release = gate();
    let inFlight = 0;
    let maxInFlight = 0;
    const began: string[] = [];
    const done: string[] = [];
    const sub = await listener.subscribe(channel, async (n) => {
      began.push(n.raw);
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      await release.opened;
      await sleep(1);
      inFlight--;
      done.push(n.raw);
    });
    await burst(items(40).map((p) => [channel, p] as const));
    await waitFor(() => inFlight === 4 && sub.buffered === 36, {
      ...DEADLINE,
      message: '4 in flight, 36 waiting',
    });
    assert.equal(sub.inFlight, 4);
    assert.deepEqual(began, items(4), 'the first four started, in arrival order');
    release.open();
    await waitFor(() => done.length === 40, { ...DEADLINE, message: '40 handled' });
    assert.equal(maxInFlight, 4);
    assert.deepEqual(began, items(40), 'started in arrival order');
    assert.equal(sub.inFlight, 0);
  });

  test('concurrency 0 runs inline: every handler starts before any resolves', async () => {
    await using listener = await started({ concurrency: 0, stopTimeoutMs: 1000 });
    const channel = uniqueChannel('pool0');
    const release = gate();
    let starts = 0;
    let resolved = 0;
    await listener.subscribe(channel, async () => {
      starts++;
      await release.opened;
      resolved++;
    });
    await burst(items(40).map((p) => [channel, p] as const));
    await waitFor(() => starts === 40, { ...DEADLINE, message: '40 starts' });
    assert.equal(resolved, 0, 'none resolved yet');
    release.open();
    await waitFor(() => resolved === 40, { ...DEADLINE, message: '40 resolved' });
  });

  test('failing handlers free their slot: a pool of 2 keeps working after throws and rejections', async () => {
    await using listener = await started({ concurrency: 2 });
    const channel = uniqueChannel('pool_err');
    const ok: string[] = [];
    const sub = await listener.subscribe(channel, async (n) => {
      if (n.raw.startsWith('throw')) throw new Error(n.raw); // rejects (async function)
      await sleep(1);
      if (n.raw.startsWith('reject')) throw new Error(n.raw);
      ok.push(n.raw);
    });
    await burst([
      ...items(4, 'throw').map((p) => [channel, p] as const),
      ...items(4, 'reject').map((p) => [channel, p] as const),
      ...items(6, 'ok').map((p) => [channel, p] as const),
    ]);
    await waitFor(() => ok.length === 6, { ...DEADLINE, message: '6 handled' });
    assert.deepEqual([...ok].sort(), items(6, 'ok'));
    await waitFor(() => listener.errors.length === 8, { ...DEADLINE, message: '8 errors' });
    for (const error of listener.errors) code(ErrorCode.HANDLER_FAILED)(error);
    assert.equal(listener.stats().handlerErrors, 8);
    assert.equal(sub.inFlight, 0);
    assert.equal(sub.ended, false);
  });

  test('a synchronous throw in an inline (concurrency 0) handler is isolated too', async () => {
    await using listener = await started({ concurrency: 0 });
    const channel = uniqueChannel('pool0_err');
    const ok: string[] = [];
    await listener.subscribe(channel, (n) => {
      if (n.raw === 'bad') throw new Error('inline boom');
      ok.push(n.raw);
    });
    await burst([
      [channel, 'a'],
      [channel, 'bad'],
      [channel, 'b'],
    ]);
    await waitFor(() => ok.length === 2, { ...DEADLINE, message: '2 handled' });
    assert.deepEqual(ok, ['a', 'b']);
    assert.equal(listener.errors.length, 1);
    code(ErrorCode.HANDLER_FAILED)(listener.errors[0]);
  });

  test('stop() waits for a handler in progress, which completes before stop resolves', async () => {
    const listener = await started({ stopTimeoutMs: 5000 });
    const channel = uniqueChannel('pool_stop');
    const release = gate();
    const events: string[] = [];
    let running = false;
    const sub = await listener.subscribe(channel, async (n) => {
      running = true;
      events.push(`start ${n.raw}`);
      await release.opened;
      events.push(`end ${n.raw}`);
    });
    await send(channel, 'slow');
    await waitFor(() => running, { ...DEADLINE, message: 'the handler started' });
    let stopped = false;
    const stopping = listener.stop().then(() => {
      stopped = true;
      events.push('stopped');
    });
    // stop() has closed the connection and ended the subscriptions: it is now at the wait for
    // handlers. A full turn of the event loop later it still has not resolved.
    await waitFor(() => sub.ended, { ...DEADLINE, message: 'stop() ended the subscription' });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(stopped, false, 'stop() is waiting for the handler');
    release.open();
    await stopping;
    assert.deepEqual(events, ['start slow', 'end slow', 'stopped']);
    assert.deepEqual(listener.errors, []);
  });

  test('stop() gives up on a handler after stopTimeoutMs and reports PGNOTIFY_TIMEOUT', async () => {
    const listener = await started({ stopTimeoutMs: 100 });
    const channel = uniqueChannel('pool_stop_to');
    const never = gate();
    let running = false;
    await listener.subscribe(channel, async () => {
      running = true;
      await never.opened;
    });
    await send(channel, 'stuck');
    await waitFor(() => running, { ...DEADLINE, message: 'the handler started' });
    await listener.stop();
    assert.equal(listener.errors.length, 1);
    code(ErrorCode.TIMEOUT)(listener.errors[0]);
    never.open();
  });
});

// ---- idle ---------------------------------------------------------------------------------

describe('idleTimeoutMs and onIdle', () => {
  test('onIdle is called when nothing arrives for idleTimeoutMs', async () => {
    await using listener = await started();
    const idle = gate();
    const infos: { idleMs: number }[] = [];
    await listener.subscribe(uniqueChannel('idle'), () => undefined, {
      idleTimeoutMs: 150,
      onIdle: (info) => {
        infos.push(info);
        idle.open();
      },
    });
    await idle.opened;
    assert.ok((infos[0]?.idleMs ?? 0) >= 150, `idleMs ${infos[0]?.idleMs} reports the quiet time`);
  });

  test('onIdle is not called while notifications keep arriving; it is once they stop', async () => {
    await using listener = await started();
    const channel = uniqueChannel('idle_busy');
    let idleCalls = 0;
    const idle = gate();
    const got: string[] = [];
    const feed = await listener.subscribe(channel, {
      idleTimeoutMs: 300,
      onIdle: () => {
        idleCalls++;
        idle.open();
      },
    });
    // Traffic for twice the idle timeout, each notification sent once the previous one
    // arrived (a round trip apart, far below the timeout).
    const until = Date.now() + 600;
    for (let sent = 1; Date.now() < until; sent++) {
      await send(channel, String(sent));
      await waitFor(() => feed.buffered + got.length >= sent, {
        ...DEADLINE,
        message: `notification ${sent} arrived`,
      });
      for (let n = feed.poll(); n !== undefined; n = feed.poll()) got.push(n.raw);
    }
    assert.equal(idleCalls, 0, 'no idle tick during continuous traffic');
    await idle.opened;
    assert.equal(idleCalls, 1);
    assert.ok(got.length > 0, 'traffic did reach the subscription');
  });
});

// ---- stop channels --------------------------------------------------------------------------

describe('stopChannel', () => {
  test('on a subscription: notifyStop ends it and the stop notification is not delivered', async () => {
    await using listener = await started();
    const notifier = createNotifier({ connection: databaseUrl() });
    try {
      const channel = uniqueChannel('stopsub');
      const stopChannel = `stop_${channel}`;
      const got: Notification[] = [];
      const others: string[] = [];
      const sub = await listener.subscribe(
        channel,
        (n) => {
          got.push(n);
        },
        { id: 'stoppable', stopChannel },
      );
      await listener.subscribe(channel, (n) => {
        others.push(n.raw);
      });
      await notifier.notify(channel, 'before');
      await notifier.notifyStop(stopChannel);
      await notifier.notify(channel, 'after');
      await waitFor(() => others.length === 2, { ...DEADLINE, message: 'the other subscriber' });
      assert.deepEqual(
        got.map((n) => [n.channel, n.raw]),
        [[channel, 'before']],
      );
      assert.equal(sub.ended, true);
      assert.equal(ids(listener).includes('stoppable'), false);
    } finally {
      await notifier.close();
    }
  });

  test('on an iterated subscription: the loop yields what came before, then ends', async () => {
    await using listener = await started();
    const notifier = createNotifier({ connection: databaseUrl() });
    try {
      const channel = uniqueChannel('stopfeed');
      const stopChannel = `stop_${channel}`;
      const feed = await listener.subscribe(channel, { stopChannel });
      await notifier.notify(channel, 'one');
      await notifier.notify(channel, 'two');
      await notifier.notifyStop(stopChannel);
      const got: string[] = [];
      for await (const n of feed) got.push(n.raw);
      assert.deepEqual(got, ['one', 'two']);
    } finally {
      await notifier.close();
    }
  });

  test('on the listener: notifyStop stops it whole; closed resolves', async () => {
    const stopChannel = uniqueChannel('stop_all');
    const listener = await started({ stopChannel });
    const notifier = createNotifier({ connection: databaseUrl() });
    try {
      const channel = uniqueChannel('stop_all_data');
      const got: string[] = [];
      await listener.subscribe(channel, (n) => {
        got.push(n.raw);
      });
      await notifier.notify(channel, 'kept');
      await notifier.notifyStop(stopChannel);
      await listener.closed;
      assert.equal(listener.state, 'stopped');
      assert.deepEqual(got, ['kept']);
      assert.deepEqual(listener.errors, []);
    } finally {
      await notifier.close();
      await listener.stop();
    }
  });
});

// ---- drain ----------------------------------------------------------------------------------

describe('drain()', () => {
  test('after drain() every notification committed before it has been handled', async () => {
    await using listener = await started();
    const channel = uniqueChannel('drain');
    const handled: string[] = [];
    await listener.subscribe(channel, async (n) => {
      await sleep(1);
      handled.push(n.raw);
    });
    for (const payload of items(20)) await send(channel, payload);
    await listener.drain();
    assert.deepEqual(handled, items(20));
  });

  test('drain({ signal }) rejects with PGNOTIFY_ABORTED when aborted', async () => {
    await using listener = await started({ stopTimeoutMs: 100 });
    const channel = uniqueChannel('drain_abort');
    const stuck = gate();
    let running = false;
    await listener.subscribe(channel, async () => {
      running = true;
      await stuck.opened;
    });
    await send(channel, 'stuck');
    await waitFor(() => running, { ...DEADLINE, message: 'the handler started' });
    const controller = new AbortController();
    const draining = listener.drain({ signal: controller.signal });
    controller.abort();
    await assert.rejects(draining, code(ErrorCode.ABORTED));
    stuck.open();
  });
});

// ---- schemas --------------------------------------------------------------------------------

type Order = { id: number; total: number };
type PricedOrder = Order & { cents: number };

/** A hand-written Standard Schema: checks an order and adds `cents` (a transform). */
function orderSchema(delay?: (value: unknown) => number): Schema<PricedOrder> {
  const check = (value: unknown) => {
    const v = value as Partial<Order> | null;
    const issues: { message: string; path: PropertyKey[] }[] = [];
    if (typeof v !== 'object' || v === null) return { issues: [{ message: 'not an object' }] };
    if (typeof v.id !== 'number') issues.push({ message: 'id must be a number', path: ['id'] });
    if (typeof v.total !== 'number')
      issues.push({ message: 'total must be a number', path: ['total'] });
    if (issues.length > 0) return { issues };
    return { value: { id: v.id, total: v.total, cents: Math.round((v.total ?? 0) * 100) } };
  };
  return {
    '~standard': {
      version: 1,
      vendor: 'pgnotify-test',
      validate: (value: unknown) => {
        if (delay === undefined) return check(value) as never;
        return sleep(delay(value)).then(() => check(value)) as never;
      },
    },
  };
}

describe('schemas', () => {
  test('valid payloads arrive transformed; invalid ones go to onError and reach no one', async () => {
    const orders = uniqueChannel('orders');
    await using listener = await started({ schemas: { [orders]: orderSchema() } });
    const got: unknown[] = [];
    await listener.subscribe(orders, (n) => {
      got.push(n.payload);
    });
    const feed = await listener.subscribe(orders);
    await burst([
      [orders, '{"id":1,"total":9.5}'],
      [orders, '{"id":"two","total":1}'],
      [orders, '"just text"'],
      [orders, '{"id":3,"total":0.25}'],
    ]);
    await waitFor(() => got.length === 2, { ...DEADLINE, message: '2 valid orders' });
    await barrier(listener);
    const expected = [
      { id: 1, total: 9.5, cents: 950 },
      { id: 3, total: 0.25, cents: 25 },
    ];
    assert.deepEqual(got, expected);
    assert.deepEqual(
      [feed.poll()?.payload, feed.poll()?.payload, feed.poll()],
      [...expected, undefined],
    );
    assert.equal(
      listener.errors.length,
      2,
      'each invalid payload reported once, not per subscriber',
    );
    const [first, second] = listener.errors as ValidationError[];
    assert.ok(first instanceof ValidationError);
    code(ErrorCode.VALIDATION_FAILED)(first);
    assert.equal(first.channel, orders);
    assert.deepEqual(
      first.issues.map((i) => [i.message, i.path]),
      [['id must be a number', ['id']]],
    );
    assert.deepEqual(
      second?.issues.map((i) => i.message),
      ['not an object'],
    );
  });

  test('an async schema keeps arrival order across valid, invalid and unvalidated channels', async () => {
    const orders = uniqueChannel('aorders');
    const plain = uniqueChannel('aplain');
    // Invalid payloads take longest to validate; valid ones take 0–3 ms.
    const schema = orderSchema((value) =>
      typeof (value as Partial<Order>)?.id === 'number' ? Math.floor(Math.random() * 4) : 8,
    );
    await using listener = await started({ schemas: { [orders]: schema } });
    const feed = await listener.subscribe([orders, plain]);
    const sent: [string, string][] = [];
    const expected: string[] = [];
    for (let i = 0; i < 24; i++) {
      if (i % 5 === 4) {
        sent.push([plain, `plain ${i}`]);
        expected.push(`plain ${i}`);
      } else if (i % 3 === 1) {
        sent.push([orders, `{"id":"bad${i}","total":1}`]);
      } else {
        sent.push([orders, `{"id":${i},"total":1}`]);
        expected.push(`order ${i}`);
      }
    }
    await burst(sent);
    const got: string[] = [];
    while (got.length < expected.length) {
      const n = await feed.next(DEADLINE);
      assert.ok(n !== undefined, `timed out after ${got.join(', ')}`);
      got.push(n.channel === plain ? String(n.payload) : `order ${(n.payload as Order).id}`);
    }
    assert.deepEqual(got, expected);
    await waitFor(() => listener.errors.length === 6, { ...DEADLINE, message: '6 invalid' });
    for (const error of listener.errors) code(ErrorCode.VALIDATION_FAILED)(error);
  });
});

// ---- AbortSignal on subscribe ---------------------------------------------------------------

describe('subscribe({ signal })', () => {
  test('aborting unsubscribes: the loop ends and nothing more is delivered', async () => {
    await using listener = await started();
    const channel = uniqueChannel('sub_abort');
    const controller = new AbortController();
    const feed = await listener.subscribe(channel, { id: 'abortable', signal: controller.signal });
    const got: string[] = [];
    const loop = (async () => {
      for await (const n of feed) got.push(n.raw);
    })();
    await send(channel, 'before');
    await waitFor(() => got.length === 1, { ...DEADLINE, message: 'the first item' });
    controller.abort();
    await loop;
    assert.equal(feed.ended, true);
    assert.deepEqual(ids(listener), []);
    await send(channel, 'after');
    await barrier(listener);
    assert.deepEqual(got, ['before']);
  });

  test('a handler subscription is removed on abort', async () => {
    await using listener = await started();
    const channel = uniqueChannel('sub_abort_h');
    const controller = new AbortController();
    const got: string[] = [];
    const sub = await listener.subscribe(
      channel,
      (n) => {
        got.push(n.raw);
      },
      { signal: controller.signal },
    );
    controller.abort();
    assert.equal(sub.ended, true);
    assert.deepEqual(ids(listener), []);
    await send(channel, 'unheard');
    await barrier(listener);
    assert.deepEqual(got, []);
  });

  test('an already aborted signal leaves nothing subscribed', async () => {
    await using listener = await started();
    const sub = await listener.subscribe(uniqueChannel('sub_aborted'), {
      signal: AbortSignal.abort(),
    });
    assert.equal(sub.ended, true);
    assert.deepEqual(ids(listener), []);
  });

  test('abort then stop right away leaves no unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const listener = await started();
      const controller = new AbortController();
      await listener.subscribe(uniqueChannel('sub_abort_stop'), { signal: controller.signal });
      controller.abort(); // e.g. one shutdown signal for everything
      await listener.stop();
      await listener.closed;
      // Node reports unhandled rejections once the microtask queue drains after a macrotask:
      // one full turn after everything settled is when one would be seen.
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  test('the abort listener is removed once the subscription ends', async () => {
    await using listener = await started();
    const shutdown = new AbortController();
    for (let i = 0; i < 3; i++) {
      const sub = await listener.subscribe(uniqueChannel('sub_leak'), { signal: shutdown.signal });
      await sub.unsubscribe();
    }
    assert.equal(getEventListeners(shutdown.signal, 'abort').length, 0);
  });

  test('a stale signal does not unsubscribe a later subscriber that reuses the id', async () => {
    await using listener = await started();
    const channel = uniqueChannel('sub_reuse');
    const old = new AbortController();
    const first = await listener.subscribe(channel, { id: 'reused', signal: old.signal });
    await first.unsubscribe();
    const second = await listener.subscribe(channel, { id: 'reused' });
    old.abort();
    assert.equal(second.ended, false);
    assert.deepEqual(ids(listener), ['reused']);
  });
});

describe('unsubscribing while the listener stops', () => {
  test('sub.unsubscribe() concurrent with stop() resolves: nothing is listened to either way', async () => {
    const listener = await started();
    const sub = await listener.subscribe(uniqueChannel('unsub_stop'));
    const results = await Promise.allSettled([sub.unsubscribe(), listener.stop()]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'fulfilled'],
    );
  });
});
