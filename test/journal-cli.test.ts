/**
 * `pgnotify setup` and `pgnotify prune`, driven as a user would: spawned processes against this
 * pass's server, asserting output and exit codes.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type pg from 'pg';
import { SCHEMA_VERSION } from '../src/journal-install.js';
import { readJournal } from '../src/journal-read.js';
import { journalNames } from '../src/journal-sql.js';
import { appendDurableBatch } from '../src/journal-write.js';
import { assertExit, runCli } from './helpers/cli.js';
import { dropSchema, testPool, uniqueSchema } from './helpers/journal.js';

const made: string[] = [];
let pool: pg.Pool;

before(() => {
  pool = testPool(2);
});

after(async () => {
  for (const s of made) await dropSchema(pool, s);
  await pool.end();
});

test('setup --print needs no server; its SQL installs the schema; setup then finds it current', async () => {
  const s = uniqueSchema('cli');
  made.push(s);
  const printed = await runCli(['setup', '--schema', s, '--print'], {
    url: 'postgres://nobody@127.0.0.1:1/none',
  });
  assertExit(printed, 0, 'setup --print');
  assert.match(printed.stdout, /^BEGIN;$/m);
  assert.match(printed.stdout, /^COMMIT;$/m);
  assert.match(printed.stdout, /GRANT INSERT ON "[^"]+"\.journal TO publisher/);
  await pool.query(printed.stdout);
  await pool.query(printed.stdout);
  const again = await runCli(['setup', '--schema', s]);
  assertExit(again, 0, 'setup on an installed schema');
  assert.match(again.stderr, new RegExp(`already at version ${SCHEMA_VERSION}`));
});

test('setup installs a fresh schema', async () => {
  const s = uniqueSchema('cli');
  made.push(s);
  const outcome = await runCli(['setup', '--schema', s]);
  assertExit(outcome, 0, 'setup');
  assert.match(outcome.stderr, new RegExp(`installed: version 0 -> ${SCHEMA_VERSION}`));
  const bad = await runCli(['setup', '--schema', '']);
  assertExit(bad, 2, 'setup with an empty schema name');
});

test('prune keeps the newest per channel; usage and missing-schema errors', async () => {
  const s = uniqueSchema('cli');
  made.push(s);
  assertExit(await runCli(['setup', '--schema', s]), 0, 'setup');
  const channels = Array.from({ length: 10 }, (_, i) => `c${i % 2}`);
  await appendDurableBatch(
    pool,
    channels,
    channels.map((_, i) => `m${i}`),
    s,
  );
  const outcome = await runCli(['prune', '--schema', s, '--max-per-channel', '2']);
  assertExit(outcome, 0, 'prune');
  assert.match(outcome.stderr, /pruned 6 messages and 0 commit records in \d+ statements/);
  const page = await readJournal(pool, { schema: s, after: 'start' });
  assert.deepEqual(
    page.rows.map((r) => r.payload),
    ['m6', 'm7', 'm8', 'm9'],
  );
  assert.deepEqual(page.gaps.map((g) => g.channel).sort(), ['c0', 'c1']);
  const age = await runCli(['prune', '--schema', s, '--max-age', '1d']);
  assertExit(age, 0, 'prune --max-age');
  assert.match(age.stderr, /pruned 0 message/);

  assertExit(await runCli(['prune', '--schema', s]), 2, 'prune without a rule');
  assertExit(await runCli(['prune', '--max-age', 'soon']), 2, 'prune with a bad duration');
  const missing = await runCli(['prune', '--schema', uniqueSchema('none'), '--max-age', '7d']);
  assertExit(missing, 3, 'prune on a missing schema');
  assert.match(missing.stderr, /pgnotify setup/);
  assert.ok(journalNames(s).wakeChannel.endsWith('.wake'));
});
