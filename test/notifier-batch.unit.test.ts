/**
 * The notifier's batches without a server: a durable batch keeps identical calls apart and
 * stops growing before MAX_DURABLE_BATCH_BYTES; a plain batch folds nothing it would lose and
 * knows no byte bound (its payloads are < 8000 bytes each).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Batch } from '../src/batch.js';
import { journalNames, journalStatements } from '../src/journal-sql.js';
import { MAX_DURABLE_BATCH_BYTES } from '../src/journal-write.js';
import { NOTIFY_BATCH_SQL, NOTIFY_SQL } from '../src/sql.js';

const el = (text: string): string => JSON.stringify(text);

test('a durable batch keeps identical (channel, payload) calls: every call is a row', () => {
  const batch = new Batch('c', false, 'same', el('same'), 'app');
  assert.equal(batch.add('c', el('same')), true);
  assert.equal(batch.add('c', el('same')), true);
  const [sql, values] = batch.query();
  assert.equal(sql, journalStatements('app').appendBatch.text.one);
  assert.deepEqual(values, ['c', '["same","same","same"]', journalNames('app').wakeChannel]);
  const plain = new Batch('c', false, 'same', el('same'));
  assert.equal(
    plain.add('c', el('same')),
    false,
    'a plain batch refuses the pair PostgreSQL would fold',
  );
});

test('one durable call is the single-row append with its text; several channels use the many form', () => {
  const one = new Batch('c', true, '{"a":1}', '{"a":1}', 'app');
  assert.deepEqual(one.query(), [
    journalStatements('app').append,
    ['c', '{"a":1}', journalNames('app').wakeChannel],
  ]);
  one.add('d', '{"a":1}');
  const [sql, values] = one.query();
  assert.equal(sql, journalStatements('app').appendBatch.json.many);
  assert.deepEqual(values.slice(0, 2), ['["c","d"]', '[{"a":1},{"a":1}]']);
  const plain = new Batch('c', false, 'x', el('x'));
  assert.deepEqual(plain.query(), [NOTIFY_SQL, ['c', 'x']]);
  plain.add('c', el('y'));
  assert.equal(plain.query()[0], NOTIFY_BATCH_SQL.text.one);
});

test('a durable batch stops before MAX_DURABLE_BATCH_BYTES; a batch of one needs no JSON array', () => {
  // One string shared by every element: no real memory is spent on the size.
  const third = 'x'.repeat(Math.floor(MAX_DURABLE_BATCH_BYTES / 3));
  const batch = new Batch('c', true, third, third, 'app');
  assert.equal(batch.add('c', third), true);
  assert.equal(batch.add('c', third), false, 'a third element would pass the bound');
  assert.equal(batch.add('c', '"small"'), true, 'a small one still fits');
  assert.equal(batch.payloads.length, 3);
  // A batch of one sends the payload's text with the single-row append, not a JSON array.
  const alone = new Batch('c', true, third, third, 'app');
  assert.equal(alone.query()[0], journalStatements('app').append);
});
