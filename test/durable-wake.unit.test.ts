/**
 * Parsing durable wake-ups (durable-wake.ts), without a server: only a wake-up signed with the
 * schema's key is a commit; every other shape either names a channel (a write statement's) or
 * is unknown (read the journal). Seqs and ids past 2^53 keep every digit.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { parseWake, signWake } from '../src/durable-wake.js';
import { cursorOf } from '../src/journal-cursor.js';

const key = randomBytes(32);
const signed = (body: string, k = key) => signWake(body, k) + body;

test('a signed commit with rows: every row with its cursor, in order', () => {
  const seq = '9007199254740993'; // 2^53 + 1
  const body = JSON.stringify([
    seq,
    1700000000123.5,
    [
      ['7', 'a', 42, '{"x":1}'],
      ['9007199254740995', 'b', 43, ''],
    ],
  ]);
  assert.deepEqual(parseWake(signed(body), key), {
    kind: 'commit',
    seq: 9007199254740993n,
    rows: [
      {
        cursor: cursorOf(seq, '7'),
        channel: 'a',
        payload: '{"x":1}',
        pid: 42,
        committedAt: 1700000000123.5,
      },
      {
        cursor: cursorOf(seq, '9007199254740995'),
        channel: 'b',
        payload: '',
        pid: 43,
        committedAt: 1700000000123.5,
      },
    ],
  });
});

test('a signed commit too large to list its rows', () => {
  assert.deepEqual(parseWake(signed(JSON.stringify(['12', 1])), key), {
    kind: 'commit',
    seq: 12n,
    rows: undefined,
  });
});

test('unsigned, wrongly signed, or no key known: unknown, never a commit', () => {
  const body = JSON.stringify(['12', 1, [['1', 'a', 1, 'p']]]);
  assert.deepEqual(parseWake('0'.repeat(32) + body, key), { kind: 'unknown' });
  assert.deepEqual(parseWake(signed(body, randomBytes(32)), key), { kind: 'unknown' });
  assert.deepEqual(parseWake(signed(body), undefined), { kind: 'unknown' });
  // Signed but not the shape the trigger makes.
  for (const bad of [
    '[',
    '[1,1]',
    '["1","x"]',
    '["1",1,[]]',
    '["1",1,[[1,"a",1,"p"]]]',
    '["1",1,{}]',
  ]) {
    assert.deepEqual(parseWake(signed(bad), key), { kind: 'unknown' }, bad);
  }
});

test('anything else is a write statement wake-up naming its channel', () => {
  for (const channel of ['orders', '', '[', `${'a'.repeat(31)}[`, `${'G'.repeat(32)}[x`]) {
    assert.deepEqual(parseWake(channel, key), { kind: 'channel', channel });
  }
});
