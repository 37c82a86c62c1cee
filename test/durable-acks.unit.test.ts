/**
 * A named consumer's acknowledgements, server-less: the stored cursor only moves to the newest
 * row whose predecessors were all acknowledged, writes are batched and one at a time, a failed
 * write is tried again, and `unstored` counts what a crash would hand over again.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConsumerAcks, FLUSH_EVERY, FLUSH_INTERVAL_MS } from '../src/durable-acks.js';

const c = (n: number) => `0000000000000000001-${String(n).padStart(19, '0')}`;

function rig(fail = 0) {
  const writes: string[] = [];
  const errors: unknown[] = [];
  let failing = fail;
  const acks = new ConsumerAcks(
    async (cursor) => {
      if (failing-- > 0) throw new Error('down');
      writes.push(cursor);
    },
    (error) => errors.push(error),
    () => '',
    () => undefined,
  );
  return { acks, writes, errors };
}

test('out-of-order acknowledgements store only the contiguous prefix', async () => {
  const { acks, writes } = rig();
  for (let i = 1; i <= 4; i++) acks.delivered(c(i));
  acks.ack(c(2));
  acks.ack(c(3));
  await acks.flush();
  assert.deepEqual(writes, [], '1 is not acknowledged: nothing can be stored');
  acks.ack(c(1));
  await acks.flush();
  assert.deepEqual(writes, [c(3)]);
  assert.equal(acks.unstored, 1, '4 was handed over and not acknowledged');
});

test('FLUSH_EVERY acknowledgements write at once; concurrent flushes make one write loop', async () => {
  const { acks, writes } = rig();
  for (let i = 1; i <= FLUSH_EVERY; i++) acks.delivered(c(i));
  for (let i = 1; i <= FLUSH_EVERY; i++) acks.ack(c(i));
  await Promise.all([acks.flush(), acks.flush()]);
  assert.deepEqual(writes, [c(FLUSH_EVERY)]);
  assert.equal(acks.unstored, 0);
});

test('a failed write is reported, nothing is marked stored, and the next flush stores it', async () => {
  const { acks, writes, errors } = rig(1);
  acks.delivered(c(1));
  acks.ack(c(1));
  await acks.flush();
  assert.equal(errors.length, 1);
  assert.equal(acks.unstored, 1);
  await acks.flush();
  assert.deepEqual(writes, [c(1)]);
  assert.equal(acks.unstored, 0);
});

test('the timer stores a lone acknowledgement within FLUSH_INTERVAL_MS', async () => {
  const { acks, writes } = rig();
  acks.delivered(c(1));
  acks.ack(c(1));
  const deadline = Date.now() + 5000;
  while (writes.length === 0 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
  assert.deepEqual(writes, [c(1)]);
});

test('acknowledgements that arrive during a write wait for FLUSH_EVERY more or the timer', async () => {
  const writes: string[] = [];
  let release: (() => void) | undefined;
  let started: (() => void) | undefined;
  const writing = new Promise<void>((resolve) => {
    started = resolve;
  });
  const acks = new ConsumerAcks(
    (cursor) =>
      new Promise<void>((resolve) => {
        writes.push(cursor);
        started?.();
        release = resolve;
      }),
    () => undefined,
    () => '',
    () => undefined,
  );
  const n = FLUSH_EVERY + 10;
  for (let i = 1; i <= n; i++) acks.delivered(c(i));
  for (let i = 1; i <= FLUSH_EVERY; i++) acks.ack(c(i));
  await writing;
  for (let i = FLUSH_EVERY + 1; i <= n; i++) acks.ack(c(i));
  release?.();
  // The write loop ends after the one write (a catch-up's reads queue behind each write).
  while (writes.length === 1 && acks.unstored > 10) {
    await new Promise((r) => setImmediate(r));
  }
  assert.deepEqual(writes, [c(FLUSH_EVERY)]);
  assert.equal(acks.unstored, 10);
  // The timer stores the rest.
  while (writes.length < 2) await new Promise((r) => setImmediate(r));
  release?.();
  assert.deepEqual(writes, [c(FLUSH_EVERY), c(n)]);
});

test('a failed write is tried again on the timer until end(); after it, it is reported and left', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const turn = () => new Promise((r) => setImmediate(r));
  const { acks, writes, errors } = rig(Number.POSITIVE_INFINITY);
  acks.delivered(c(1));
  acks.ack(c(1));
  await acks.flush();
  assert.equal(errors.length, 1);
  t.mock.timers.tick(FLUSH_INTERVAL_MS);
  for (let i = 0; i < 5; i++) await turn();
  assert.equal(errors.length, 2, 'tried again on the timer while the subscription runs');
  acks.end();
  t.mock.timers.tick(FLUSH_INTERVAL_MS); // the retry scheduled before end() still runs once
  for (let i = 0; i < 5; i++) await turn();
  await acks.flush();
  const reported = errors.length;
  t.mock.timers.tick(60_000);
  for (let i = 0; i < 5; i++) await turn();
  assert.equal(errors.length, reported, 'no write after the last failure once ended');
  assert.deepEqual(writes, []);
});
