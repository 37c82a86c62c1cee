/**
 * Unit tests of src/subscription.ts with a fake owner: the bounded buffer and its overflow
 * policies, gap reports in `withGaps()` loops (never dropped), and what a handler
 * subscription refuses. No database needed.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ErrorCode } from '../src/errors.js';
import { Subscription, type SubscriptionOwner } from '../src/subscription.js';
import type { OutageGap as Gap, Handler, Notification, OverflowPolicy } from '../src/types.js';
import { isCode } from './helpers/assert.js';

function owner() {
  const log = { dropped: 0, errors: [] as Error[], unsubscribed: [] as unknown[] };
  const fake: SubscriptionOwner = {
    unsubscribe: async (id) => {
      log.unsubscribed.push(id);
    },
    reportHandlerError: (error) => log.errors.push(error as Error),
    reportOverflow: (_, dropped) => {
      log.dropped += dropped;
    },
    reportError: (error) => log.errors.push(error),
  };
  return { fake, log };
}

function make(
  options: { max?: number; overflow?: OverflowPolicy; handler?: Handler<unknown> } = {},
) {
  const { fake, log } = owner();
  const sub = new Subscription<unknown>(fake, {
    id: 'sub',
    handler: options.handler,
    concurrency: 1,
    max: options.max ?? 5,
    overflow: options.overflow ?? 'drop-oldest',
    onGap: undefined,
    idleTimeoutMs: undefined,
    onIdle: undefined,
    stopChannel: undefined,
    decoder: undefined,
  });
  return { sub, log };
}

const note = (raw: string): Notification => ({
  channel: 'c',
  payload: raw,
  raw,
  pid: 1,
  receivedAt: 0,
});

const gap = (at: number): Gap => ({
  kind: 'gap',
  channels: ['c'],
  disconnectedAt: at,
  reconnectedAt: at + 1,
  downtimeMs: 1,
  cause: new Error('lost'),
});

/** Starts a withGaps() loop (it counts as a gap reader once started) and reads one item. */
async function startedLoop(sub: Subscription<unknown>) {
  const loop = sub.withGaps();
  const first = loop.next();
  sub.deliver(note('first'));
  assert.equal(((await first).value as Notification).raw, 'first');
  return loop;
}

describe('overflow and gap reports', () => {
  test('drop-oldest never drops a gap report; gaps do not count against max', async () => {
    const { sub, log } = make({ max: 3 });
    const loop = await startedLoop(sub);
    sub.gap(gap(1));
    for (const raw of ['1', '2', '3', '4', '5']) sub.deliver(note(raw));
    assert.equal(log.dropped, 2);
    assert.equal(sub.dropped, 2);
    assert.equal(sub.buffered, 4, 'the gap and the 3 newest');
    const items = [];
    for (let i = 0; i < 4; i++) items.push((await loop.next()).value);
    assert.equal((items[0] as Gap).kind, 'gap');
    assert.deepEqual(
      items.slice(1).map((n) => (n as Notification).raw),
      ['3', '4', '5'],
    );
    await loop.return(undefined);
  });

  test('gaps between notifications stay in place while older notifications are dropped', async () => {
    const { sub } = make({ max: 2 });
    const loop = await startedLoop(sub);
    sub.deliver(note('1'));
    sub.gap(gap(1));
    sub.deliver(note('2'));
    sub.gap(gap(2));
    sub.deliver(note('3')); // full: drops '1', the oldest notification
    sub.deliver(note('4')); // drops '2', behind the first gap
    const items = [];
    for (let i = 0; i < 4; i++) items.push((await loop.next()).value as Notification | Gap);
    assert.deepEqual(
      items.map((item) => (item.kind === 'gap' ? `gap${item.disconnectedAt}` : item.raw)),
      ['gap1', 'gap2', '3', '4'],
    );
    await loop.return(undefined);
  });

  test('drop-newest keeps the oldest; a plain loop or poll() skips gap reports', () => {
    const { sub, log } = make({ max: 2, overflow: 'drop-newest' });
    for (const raw of ['1', '2', '3']) sub.deliver(note(raw));
    assert.equal(log.dropped, 1);
    assert.equal(sub.poll()?.raw, '1');
    assert.equal(sub.poll()?.raw, '2');
    assert.equal(sub.poll(), undefined);
  });

  test("'error' ends the subscription with BUFFER_OVERFLOW and unsubscribes", async () => {
    const { sub, log } = make({ max: 1, overflow: 'error' });
    sub.deliver(note('1'));
    sub.deliver(note('2'));
    assert.equal(sub.ended, true);
    assert.equal(sub.closed, true, 'the deprecated alias agrees');
    assert.deepEqual(log.unsubscribed, [], 'not from inside the delivery');
    await Promise.resolve();
    assert.deepEqual(log.unsubscribed, ['sub'], 'right after it');
    assert.equal(sub.poll()?.raw, '1', 'what was buffered stays readable');
    await assert.rejects(sub.next(), isCode(ErrorCode.BUFFER_OVERFLOW));
  });
});

describe('a subscription with a handler', () => {
  test('next() refuses a timeout no timer can hold (it would fire after 1 ms)', async () => {
    const { sub } = make();
    await assert.rejects(sub.next({ timeoutMs: 2 ** 31 }), isCode(ErrorCode.INVALID_OPTION));
    await assert.rejects(sub.next({ timeoutMs: -1 }), isCode(ErrorCode.INVALID_OPTION));
    sub.deliver(note('x'));
    assert.equal((await sub.next({ timeoutMs: 2 ** 31 - 1 }))?.raw, 'x');
  });

  test('next(), for await and withGaps() reject NOT_ITERABLE and leave it subscribed', async () => {
    const got: string[] = [];
    const { sub, log } = make({ handler: (n) => void got.push(n.raw) });
    await assert.rejects(sub.next(), isCode(ErrorCode.NOT_ITERABLE));
    await assert.rejects(sub[Symbol.asyncIterator]().next(), isCode(ErrorCode.NOT_ITERABLE));
    await assert.rejects(sub.withGaps().next(), isCode(ErrorCode.NOT_ITERABLE));
    assert.equal(sub.ended, false);
    assert.deepEqual(log.unsubscribed, []);
    sub.deliver(note('x'));
    assert.deepEqual(got, ['x']);
    assert.equal(sub.poll(), undefined);
  });
});
