/**
 * Least privilege, as documented: the GRANT lines printed in `installSql()`'s comments are run
 * for three fresh roles (publisher, consumer, pruner), and each role can do its job and not
 * the others'. Tests the documentation itself, so it cannot drift from the code.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type pg from 'pg';
import { sqlStateOf } from '../src/errors.js';
import { installSchema, loadCursor, resolveCursor, saveCursor } from '../src/journal.js';
import { durableStatus, prune } from '../src/journal-admin.js';
import { installSql } from '../src/journal-install.js';
import { readJournal } from '../src/journal-read.js';
import { appendDurable, appendDurableBatch } from '../src/journal-write.js';
import { quoteIdent } from '../src/sql.js';
import { connect, dropSchema, readAll, testPool, uniqueSchema } from './helpers/journal.js';

const schema = uniqueSchema('grant');
const suffix = `${process.pid.toString(36)}_${randomBytes(3).toString('hex')}`;
const roles = {
  publisher: `pgn_pub_${suffix}`,
  consumer: `pgn_con_${suffix}`,
  pruner: `pgn_prn_${suffix}`,
};
let pool: pg.Pool;
const clients: pg.Client[] = [];

/** A connection acting as `role` (the test's own user must be allowed to SET ROLE). */
async function as(role: string): Promise<pg.Client> {
  const client = await connect();
  clients.push(client);
  await client.query(`SET ROLE ${quoteIdent(role)}`);
  return client;
}

const denied = (error: unknown) => sqlStateOf((error as { cause?: unknown }).cause) === '42501';

before(async () => {
  pool = testPool(2);
  await installSchema({ client: pool, schema });
  for (const role of Object.values(roles)) await pool.query(`CREATE ROLE ${quoteIdent(role)}`);
  const grants = [...installSql(schema).matchAll(/GRANT [^;]+ TO (publisher|consumer|pruner);/g)];
  assert.ok(grants.length >= 6, 'the script documents the grants');
  for (const [statement, who] of grants) {
    // The pruner gets the consumer's grants plus its own, as the comment says.
    const targets =
      who === 'consumer' ? [roles.consumer, roles.pruner] : [roles[who as 'publisher' | 'pruner']];
    for (const role of targets) {
      await pool.query(statement.replace(/TO \w+;$/, `TO ${quoteIdent(role)}`));
    }
  }
});

after(async () => {
  await Promise.all(clients.map((c) => c.end()));
  await dropSchema(pool, schema);
  for (const role of Object.values(roles)) {
    await pool.query(`DROP OWNED BY ${quoteIdent(role)}`).catch(() => undefined);
    await pool.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`);
  }
  await pool.end();
});

test('a publisher can only write; its rows are sequenced by the definer trigger', async () => {
  const publisher = await as(roles.publisher);
  await publisher.query('BEGIN');
  await appendDurable(publisher, 'g', 'one', schema);
  await appendDurableBatch(publisher, 'g', ['two', 'three'], schema);
  await appendDurableBatch(publisher, ['g', 'h'], ['four', 'five'], schema);
  await publisher.query('COMMIT');
  assert.deepEqual(
    (await readAll(pool, schema)).map((r) => r.payload),
    ['one', 'two', 'three', 'four', 'five'],
  );
  await assert.rejects(readJournal(publisher, { schema, after: 'start' }), denied);
  await assert.rejects(
    saveCursor(publisher, 'x', await resolveCursor(pool, 'now', { schema }), { schema }),
    denied,
  );
});

test('a consumer can read, keep its cursor and see the status, not write or prune', async () => {
  const consumer = await as(roles.consumer);
  const rows = await readAll(consumer, schema);
  assert.ok(rows.length >= 5);
  const head = await resolveCursor(consumer, 'now', { schema });
  assert.equal(await saveCursor(consumer, 'app', rows[1]?.cursor ?? '', { schema }), true);
  assert.equal(await saveCursor(consumer, 'app', head, { schema }), true);
  assert.equal(await loadCursor(consumer, 'app', { schema }), head);
  const status = await durableStatus(consumer, schema);
  assert.deepEqual(
    status.consumers.map((c) => c.name),
    ['app'],
  );
  await assert.rejects(appendDurable(consumer, 'g', 'no', schema), denied);
  await assert.rejects(prune(consumer, { schema, maxPerChannel: 0 }), denied);
});

test('a pruner can prune', async () => {
  const pruner = await as(roles.pruner);
  const result = await prune(pruner, { schema, maxPerChannel: 1 });
  assert.equal(result.rows, 3);
  const page = await readJournal(pruner, { schema, after: 'start' });
  assert.deepEqual(
    page.rows.map((r) => r.payload),
    ['four', 'five'],
  );
  assert.deepEqual(
    page.gaps.map((g) => [g.channel, g.count]),
    [['g', 3]],
  );
});
