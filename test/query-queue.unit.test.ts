/**
 * The listener connection's statement queue without a server: one statement in flight, each
 * lane first in first out, queued control statements before queued data ones (never before
 * the one in flight), a failure or a throw passed to its caller only.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type pg from 'pg';
import { QueryQueue } from '../src/query-queue.js';

/** A client whose statements settle when the test says so. */
function fakeClient() {
  const calls: { text: string; settle(error?: Error): void }[] = [];
  let active = 0;
  let maxActive = 0;
  const client = {
    query(text: string): Promise<pg.QueryResult> {
      if (text === 'throw') throw new Error('thrown');
      active++;
      maxActive = Math.max(maxActive, active);
      return new Promise((resolve, reject) => {
        calls.push({
          text,
          settle: (error) => {
            active--;
            if (error === undefined) resolve({ rows: [{ text }] } as unknown as pg.QueryResult);
            else reject(error);
          },
        });
      });
    },
  } as unknown as pg.Client;
  return { client, calls, maxActive: () => maxActive };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test('one in flight; control before queued data, each lane in order', async () => {
  const { client, calls, maxActive } = fakeClient();
  const queue = new QueryQueue(client);
  const order: string[] = [];
  const run = (lane: 'control' | 'data', text: string) =>
    queue.run(lane, text).then(
      () => order.push(text),
      (error: Error) => order.push(`${text}:${error.message}`),
    );
  const all = [run('data', 'd1'), run('data', 'd2'), run('control', 'c1'), run('data', 'd3')];
  await tick();
  assert.deepEqual(
    calls.map((c) => c.text),
    ['d1'],
  );
  assert.equal(queue.waiting, 3);
  all.push(run('control', 'c2'));
  for (let i = 0; i < 5; i++) {
    await tick();
    calls[i]?.settle(i === 2 ? new Error('refused') : undefined);
  }
  await Promise.all(all);
  assert.deepEqual(
    calls.map((c) => c.text),
    ['d1', 'c1', 'c2', 'd2', 'd3'],
  );
  assert.deepEqual(order, ['d1', 'c1', 'c2:refused', 'd2', 'd3']);
  assert.equal(maxActive(), 1);
  assert.equal(queue.waiting, 0);
});

test('a query() that throws rejects its caller and the queue goes on', async () => {
  const { client, calls } = fakeClient();
  const queue = new QueryQueue(client);
  const thrown = queue.run('data', 'throw');
  const next = queue.run('data', 'after');
  await assert.rejects(thrown, /thrown/);
  await tick();
  calls[0]?.settle();
  assert.deepEqual((await next).rows, [{ text: 'after' }]);
});
