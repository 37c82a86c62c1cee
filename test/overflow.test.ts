/**
 * Bursts against bounded buffers on a real server: a consumer that never reads loses what its
 * policy says, reports every loss, and never stops the socket from being read (a listener
 * that stops reading fills the server's notification queue for the whole cluster).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import {
  ErrorCode,
  type Listener,
  type ListenerOptions,
  type Notification,
  PgNotifyError,
  type SubscriberId,
} from '../src/index.js';
import { guardedTests } from './fixtures/crash-guard.js';
import { isCode } from './helpers/assert.js';
import { uniqueChannel, waitFor } from './helpers/db.js';
import { listenerRig } from './helpers/rig.js';

const plumbing = guardedTests();
const { defer } = plumbing;

interface OverflowInfo {
  subscriberId: SubscriberId;
  channels: readonly string[];
  dropped: number;
  totalDropped: number;
}

interface Rig {
  listener: Listener;
  errors: PgNotifyError[];
  overflows: OverflowInfo[];
}

function rig(options: Omit<ListenerOptions, 'onError'> = {}): Rig {
  const overflows: OverflowInfo[] = [];
  const { listener, errors } = listenerRig({ applicationName: 'pgnotify-overflow', ...options });
  listener.on('overflow', (info) => overflows.push(info));
  defer(() => listener.stop());
  return { listener, errors, overflows };
}

/** `count` notifications on `channel`, payloads '1'..'count', in one statement (one commit). */
async function burst(channel: string, count: number): Promise<void> {
  await plumbing.admin.query('SELECT pg_notify($1, i::text) FROM generate_series(1, $2::int) i', [
    channel,
    count,
  ]);
}

function received(listener: Listener, count: number, timeoutMs = 30_000): Promise<true> {
  return waitFor(() => listener.stats().received >= count, {
    timeoutMs,
    intervalMs: 20,
    message: `${count} notifications read`,
  });
}

/** Everything buffered, in order. */
function drainAll<T>(sub: { poll(): Notification<T> | undefined }): T[] {
  const out: T[] = [];
  for (let n = sub.poll(); n !== undefined; n = sub.poll()) out.push(n.payload);
  return out;
}

const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

describe('bounded buffers under a burst', () => {
  test('drop-oldest: 100 000 to a reader that never reads keep the newest 1000', async () => {
    const { listener, errors, overflows } = rig();
    const ch = uniqueChannel('burst');
    const feed = await listener.subscribe<string>(ch, { id: 'idle', buffer: { max: 1000 } });
    let handled = 0;
    let last = 0;
    let inOrder = true;
    await listener.subscribe(
      ch,
      (n) => {
        handled++;
        if (n.payload !== last + 1) inOrder = false;
        last = n.payload as number;
      },
      { id: 'reader' },
    );
    await listener.start();
    await burst(ch, 100_000);
    await received(listener, 100_000);
    await waitFor(() => sum(overflows.map((o) => o.dropped)) >= 99_000, {
      message: 'overflow events for 99 000 drops',
    });

    assert.equal(listener.stats().received, 100_000);
    assert.equal(handled, 100_000, 'the socket kept being read: the other subscriber got all');
    assert.ok(inOrder, 'in order');
    assert.equal(feed.buffered, 1000);
    assert.equal(feed.dropped, 99_000);
    assert.equal(listener.stats().dropped, 99_000);
    const stats = listener.stats().subscribers.find((s) => s.id === 'idle');
    assert.deepEqual(stats && { buffered: stats.buffered, dropped: stats.dropped }, {
      buffered: 1000,
      dropped: 99_000,
    });
    assert.ok(overflows.every((o) => o.subscriberId === 'idle'));
    assert.ok(overflows.every((o) => o.channels.length === 1 && o.channels[0] === ch));
    assert.equal(sum(overflows.map((o) => o.dropped)), 99_000);
    assert.equal(overflows.at(-1)?.totalDropped, 99_000);
    const reports = errors.filter(isCode(ErrorCode.BUFFER_OVERFLOW));
    assert.ok(reports.length > 0, 'onError gets PGNOTIFY_BUFFER_OVERFLOW');
    assert.ok(reports.every((e) => e.subscriberId === 'idle'));
    assert.deepEqual(
      errors.filter((e) => e.code !== ErrorCode.BUFFER_OVERFLOW),
      [],
    );
    // auto decode: '99001' arrives as the number 99001.
    assert.deepEqual(drainAll(feed), range(99_001, 100_000));
    assert.equal(feed.buffered, 0);
  });

  test('drop-newest keeps the oldest', async () => {
    const { listener, errors, overflows } = rig();
    const ch = uniqueChannel('newest');
    const feed = await listener.subscribe(ch, {
      buffer: { max: 1000, overflow: 'drop-newest' },
    });
    await listener.start();
    await burst(ch, 20_000);
    await received(listener, 20_000);
    await waitFor(() => sum(overflows.map((o) => o.dropped)) >= 19_000, {
      message: 'overflow events for 19 000 drops',
    });
    assert.equal(feed.buffered, 1000);
    assert.equal(feed.dropped, 19_000);
    assert.equal(sum(overflows.map((o) => o.dropped)), 19_000);
    assert.ok(errors.some(isCode(ErrorCode.BUFFER_OVERFLOW)));
    assert.deepEqual(drainAll(feed), range(1, 1000));
  });

  test("overflow 'error' ends the subscription after what it buffered", async () => {
    const { listener, errors, overflows } = rig();
    const ch = uniqueChannel('strict');
    const feed = await listener.subscribe(ch, {
      id: 'strict',
      buffer: { max: 10, overflow: 'error' },
    });
    await listener.start();
    await burst(ch, 50);
    await received(listener, 50);
    await waitFor(() => feed.ended, { message: 'the subscription to end' });
    assert.equal(
      listener.subscribers().some((s) => s.id === 'strict'),
      false,
      'unsubscribed',
    );
    const seen: unknown[] = [];
    await assert.rejects(
      (async () => {
        for await (const n of feed) seen.push(n.payload);
      })(),
      (error) => {
        assert.ok(error instanceof PgNotifyError);
        assert.equal(error.code, ErrorCode.BUFFER_OVERFLOW);
        assert.equal(error.subscriberId, 'strict');
        return true;
      },
    );
    assert.deepEqual(seen, range(1, 10));
    await waitFor(() => overflows.length > 0, { message: 'an overflow event' });
    assert.equal(sum(overflows.map((o) => o.dropped)), 1, 'only the first excess is dropped');
    assert.ok(errors.some(isCode(ErrorCode.BUFFER_OVERFLOW)));
    // The channel is no longer listened to once nobody wants it.
    await waitFor(() => listener.channels().every((c) => c.name !== ch || !c.listening), {
      message: 'the channel unlistened',
    });
    await assert.rejects(feed.next(), isCode(ErrorCode.BUFFER_OVERFLOW));
  });

  test('memory stays flat: 100 000 into the default buffer (10 000)', async () => {
    const gc = exposeGc();
    const { listener } = rig();
    const ch = uniqueChannel('flat');
    const feed = await listener.subscribe(ch);
    await listener.start();
    // Warm up (pg's parser, the listener's paths) so the baseline is not the cold heap.
    await burst(ch, 10_000);
    await received(listener, 10_000);
    drainAll(feed);
    gc();
    const before = process.memoryUsage().heapUsed;
    await burst(ch, 100_000);
    await received(listener, 110_000);
    gc();
    const growth = process.memoryUsage().heapUsed - before;
    assert.equal(feed.buffered, 10_000);
    assert.equal(feed.dropped, 90_000);
    assert.ok(growth < 50 * 1024 * 1024, `heap grew by ${(growth / 1048576).toFixed(1)} MB`);
  });
});

/** global.gc, exposed at run time when the process was started without --expose-gc. */
function exposeGc(): () => void {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (typeof existing === 'function') return existing;
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}
