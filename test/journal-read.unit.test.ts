/**
 * The prepared journal read against a fake query function (no server): a session that lacks
 * the statement prepares it, also when its connection is replaced between PREPARE and EXECUTE.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ErrorCode, type PgNotifyError } from '../src/errors.js';
import { readPage } from '../src/journal-read.js';
import type { Queryable } from '../src/notifier.js';

/** An error as pg reports a missing prepared statement. */
const missing = () =>
  Object.assign(new Error('prepared statement does not exist'), { code: '26000' });

/** Answers EXECUTEs from `executes` in turn (an error is thrown); PREPAREs succeed. */
function fake(executes: (Error | 'page')[]): { queryable: Queryable; calls: string[] } {
  const calls: string[] = [];
  const queryable: Queryable = {
    async query(text: string) {
      if (text.startsWith('PREPARE')) {
        calls.push('PREPARE');
        return { rows: [] };
      }
      calls.push('EXECUTE');
      const next = executes.shift();
      if (next instanceof Error) throw next;
      // set_config, the read (its head row only: an empty journal), set_config
      return [{ rows: [] }, { rows: [{ k: 'h', seq: null }] }, { rows: [] }];
    },
  };
  return { queryable, calls };
}

test('a connection replaced between PREPARE and EXECUTE: prepared again, and the read succeeds', async () => {
  const { queryable, calls } = fake([missing(), missing(), 'page']);
  const page = await readPage(queryable, { after: 'start' }, true);
  assert.deepEqual(page.rows, []);
  assert.equal(page.caughtUp, true);
  assert.deepEqual(calls, ['EXECUTE', 'PREPARE', 'EXECUTE', 'PREPARE', 'EXECUTE']);
});

test('a statement that stays missing fails after three PREPAREs, as JOURNAL_FAILED', async () => {
  const { queryable, calls } = fake([missing(), missing(), missing(), missing(), missing()]);
  await assert.rejects(
    readPage(queryable, { after: 'start' }, true),
    (e: PgNotifyError) => e.code === ErrorCode.JOURNAL_FAILED,
  );
  assert.equal(calls.filter((c) => c === 'PREPARE').length, 3);
});
