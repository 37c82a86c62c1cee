/**
 * `pgnotify listen --durable`, spawned: replay after a cursor with the cursors in the output,
 * and a named consumer that resumes where its last run stopped.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { appendDurableBatch } from '../src/journal-write.js';
import { uniqueChannel } from './helpers/db.js';
import { journalFixture } from './helpers/journal.js';
import { runScript } from './helpers/script.js';

const { schema, pool } = journalFixture('cli');

const listen = (...args: string[]) =>
  runScript('src/cli/main.ts', ['listen', '--durable', '--schema', schema, ...args], 30_000);
const lines = (stdout: string) =>
  stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { payload: unknown; cursor: string });

test('--after replays with cursors; --after <cursor> resumes right after it', async () => {
  const channel = uniqueChannel('clid');
  await appendDurableBatch(pool, channel, ['1', '2', '3'], schema);
  const all = await listen('--after', 'start', '--json', '--count', '3', channel);
  assert.equal(all.code, 0, all.stderr);
  const got = lines(all.stdout);
  assert.deepEqual(
    got.map((n) => n.payload),
    [1, 2, 3],
  );
  const resumed = await listen(
    '--after',
    got[0]?.cursor as string,
    '--json',
    '--count',
    '2',
    channel,
  );
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.deepEqual(
    lines(resumed.stdout).map((n) => n.cursor),
    got.slice(1).map((n) => n.cursor),
  );
  const bad = await listen('--after', 'nonsense', channel);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /INVALID_CURSOR|cursor/);
});

test('--consumer: a first run stores its starting point; the next run gets what came after', async () => {
  const channel = uniqueChannel('clic');
  const consumer = `c_${channel}`;
  await appendDurableBatch(pool, channel, ['old'], schema);
  const first = await listen('--consumer', consumer, '--json', '--timeout', '1500', channel);
  assert.equal(first.code, 1, 'nothing arrived (it started at now)');
  assert.equal(first.stdout, '');
  await appendDurableBatch(pool, channel, ['a', 'b'], schema);
  const second = await listen('--consumer', consumer, '--json', '--count', '2', channel);
  assert.equal(second.code, 0, second.stderr);
  assert.deepEqual(
    lines(second.stdout).map((n) => n.payload),
    ['a', 'b'],
  );
  const third = await listen('--consumer', consumer, '--json', '--timeout', '1500', channel);
  assert.equal(third.code, 1, 'acknowledged: nothing again');
  const both = await listen('--consumer', consumer, '--after', 'start', channel);
  assert.equal(both.code, 2);
});
