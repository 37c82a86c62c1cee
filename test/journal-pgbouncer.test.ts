/**
 * Behind a real PgBouncer in transaction pooling mode: the journal is written and read through
 * it exactly as directly, while LISTEN through it never delivers — what `detectPooler` (and so
 * `pgnotify doctor`) reports, and why durable subscriptions there must poll the journal.
 * Skipped, with a visible SKIP line, where pgbouncer is not installed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { installSchema } from '../src/journal.js';
import { detectPooler } from '../src/journal-admin.js';
import { appendDurable, appendDurableBatch } from '../src/journal-write.js';
import { databaseUrl } from './helpers/db.js';
import { connect, dropSchema, readAll, testPool, uniqueSchema } from './helpers/journal.js';
import { type PgBouncer, pgbouncerMissing, startPgBouncer } from './helpers/pgbouncer.js';

const missing = pgbouncerMissing();
if (missing !== undefined) process.stdout.write(`SKIP journal-pgbouncer: ${missing}\n`);

describe('through PgBouncer (transaction pooling)', { skip: missing }, () => {
  const schema = uniqueSchema('bnc');
  let direct: pg.Pool;
  let bouncer: PgBouncer;
  let pooled: pg.Pool;

  before(async () => {
    direct = testPool(2);
    await installSchema({ client: direct, schema });
    bouncer = await startPgBouncer({
      targetUrl: databaseUrl(),
      poolMode: 'transaction',
      poolSize: 2,
    });
    pooled = new pg.Pool({ connectionString: bouncer.url, max: 6 });
    pooled.on('error', () => undefined);
  });

  after(async () => {
    await pooled?.end();
    await bouncer?.stop();
    await dropSchema(direct, schema);
    await direct.end();
  });

  test('writes and paged reads through it match a direct read', async () => {
    // More client connections than server ones: statements from six clients share two backends.
    const writes = Array.from({ length: 6 }, (_, w) =>
      appendDurableBatch(
        pooled,
        `c${w % 2}`,
        Array.from({ length: 50 }, (_, i) => `${w}:${i}`),
        schema,
      ),
    );
    await Promise.all(writes);
    const client = await pooled.connect();
    try {
      await client.query('BEGIN');
      await appendDurable(client, 'tx', 'one', schema);
      await appendDurable(client, 'tx', 'two', schema);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const viaBouncer = await readAll(pooled, schema, 'start', { limitRows: 17 });
    const viaServer = await readAll(direct, schema, 'start', { limitRows: 1000 });
    assert.equal(viaBouncer.length, 302);
    assert.deepEqual(viaBouncer, viaServer);
    assert.deepEqual(
      viaBouncer.slice(-2).map((r) => r.payload),
      ['one', 'two'],
    );
  });

  test('LISTEN through it does not deliver; directly it does', async () => {
    const through = new pg.Client({ connectionString: bouncer.url });
    through.on('error', () => undefined);
    await through.connect();
    const straight = await connect();
    try {
      assert.deepEqual(await detectPooler(through, direct, { timeoutMs: 1500 }), {
        pooler: true,
        listenWorks: false,
        mode: 'poll',
      });
      assert.deepEqual(await detectPooler(straight, direct, { timeoutMs: 5000 }), {
        pooler: false,
        listenWorks: true,
        mode: 'listen',
      });
    } finally {
      await through.end().catch(() => undefined);
      await straight.end();
    }
  });
});
