/**
 * The commit wake-up (schema version 2): the commit trigger sends a commit's seq and rows, signed,
 * and a caught-up listener hands them over without reading the journal. What must hold besides
 * the speed: rows a transaction adds after its trigger ran early (SET CONSTRAINTS … IMMEDIATE)
 * still arrive; a forged wake-up delivers nothing and hides nothing; a seq that never commits
 * (a hole) and a transaction too large for a wake-up fall back to a read; an upgrade from
 * version 1 under a running listener loses nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import type { Listener, Subscription } from '../src/index.js';
import { installSchema, resolveCursor, wakeChannel } from '../src/journal.js';
import { installSql, MIGRATIONS } from '../src/journal-install.js';
import { journalNames } from '../src/journal-sql.js';
import { appendDurable, appendDurableBatch } from '../src/journal-write.js';
import { internalsOf } from '../src/listener.js';
import { uniqueChannel, waitFor } from './helpers/db.js';
import { connect, dropSchema, isJournalRead, testPool, uniqueSchema } from './helpers/journal.js';
import { type Collector, collect, listenerRig } from './helpers/rig.js';

const schema = uniqueSchema('dcw');
const made = [schema];
let pool: pg.Pool;

before(async () => {
  pool = testPool(2);
  await installSchema({ client: pool, schema });
});
after(async () => {
  for (const s of made) await dropSchema(pool, s);
  await pool.end();
});

/** Counts the journal reads the listener sends from now on. */
function countReads(listener: Listener): { readonly count: number } {
  const session = internalsOf(listener).session;
  const query = session.query.bind(session);
  const counter = { count: 0 };
  session.query = ((text: string, values?: readonly unknown[]) => {
    if (isJournalRead(text)) counter.count++;
    return query(text, values);
  }) as typeof session.query;
  return counter;
}

/** Sends `payload` on `channel` and waits until `box` has it: everything before it arrived. */
async function sendAndWait(box: Collector, channel: string, payload: string, s = schema) {
  await appendDurable(pool, channel, payload, s);
  await box.wait(payload);
}

/**
 * Sends warm-up rounds with `send` until one went through without a journal read: every
 * subscription has caught up and joined its tail (a subscription reads on its own until then).
 */
async function settle(reads: { readonly count: number }, send: (i: number) => Promise<void>) {
  for (let i = 0; i < 20; i++) {
    const before = reads.count;
    await send(i);
    if (reads.count === before) return;
  }
  throw new Error('every warm-up round read the journal');
}

/**
 * A running listener with one durable subscription on `channel` that has caught up (on a
 * version 1 schema, whose every wake-up reads: once a warm-up message arrived).
 */
async function running(channel: string, s = schema, version1 = false) {
  const rig = listenerRig({ decode: 'text' });
  const reads = countReads(rig.listener);
  const box = collect();
  let sub: Subscription | undefined;
  try {
    sub = await rig.listener.subscribe(channel, box.handler, {
      durable: { after: 'now', schema: s },
    });
    await rig.listener.start();
    if (version1) await sendAndWait(box, channel, 'warm-up', s);
    else await settle(reads, (i) => sendAndWait(box, channel, `warm-up ${i}`, s));
  } catch (error) {
    await rig.listener.stop();
    throw error;
  }
  box.got.length = 0;
  return { ...rig, box, reads, sub };
}

describe('commit wake-ups', () => {
  test('a caught-up subscription gets each commit from its wake-up, without a read', async () => {
    const channel = uniqueChannel('dcw');
    const { listener, errors, box, reads } = await running(channel);
    try {
      const before = reads.count;
      const sent: string[] = [];
      for (let i = 0; i < 20; i++) {
        sent.push(`m${i}`);
        await sendAndWait(box, channel, `m${i}`);
      }
      // Several rows in one transaction, on two channels (one not subscribed): one wake-up.
      await appendDurableBatch(pool, [channel, 'other', channel], ['b1', 'x', 'b2'], schema);
      await box.wait('b2');
      assert.deepEqual(box.raws(), [...sent, 'b1', 'b2']);
      assert.equal(reads.count - before, 0, 'journal reads after the subscription caught up');
      assert.deepEqual(errors, []);
    } finally {
      await listener.stop();
    }
  });

  test('rows added after SET CONSTRAINTS ALL IMMEDIATE ran the trigger early arrive, once', async () => {
    const channel = uniqueChannel('dcw');
    const { listener, errors, box } = await running(channel);
    const client = await connect();
    try {
      await client.query('BEGIN');
      await appendDurable(client, channel, 'a1', schema);
      await client.query('SET CONSTRAINTS ALL IMMEDIATE');
      await appendDurable(client, channel, 'a2', schema);
      await appendDurable(client, channel, 'a3', schema);
      await client.query('COMMIT');
      await sendAndWait(box, channel, 'b');
      await sendAndWait(box, channel, 'c');
      assert.deepEqual(box.raws(), ['a1', 'a2', 'a3', 'b', 'c']);
      assert.deepEqual(errors, []);
    } finally {
      await client.end();
      await listener.stop();
    }
  });

  test('a forged wake-up delivers nothing and hides nothing', async () => {
    const channel = uniqueChannel('dcw');
    const { listener, errors, box } = await running(channel);
    try {
      const head = await resolveCursor(pool, 'now', { schema });
      const next = String(BigInt(head.slice(0, 19)) + 1n);
      const body = JSON.stringify([next, Date.now(), [['1', channel, 1, 'forged']]]);
      // Any role may NOTIFY the wake channel: unsigned, and signed with a wrong key.
      for (const signature of ['0'.repeat(32), 'f'.repeat(32)]) {
        await pool.query('SELECT pg_notify($1, $2)', [wakeChannel(schema), signature + body]);
      }
      await sendAndWait(box, channel, 'real');
      await sendAndWait(box, channel, 'after');
      assert.deepEqual(box.raws(), ['real', 'after']);
      assert.deepEqual(errors, []);
    } finally {
      await listener.stop();
    }
  });

  test('a seq that never commits, a missed wake-up, a transaction too large for one: read instead', async () => {
    const channel = uniqueChannel('dcw');
    const { q } = journalNames(schema);
    // Runs after the commit trigger (names fire in order): the transaction took a seq, then fails.
    await pool.query(`
      CREATE FUNCTION ${q}.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'refused at commit'; END $$;
      CREATE CONSTRAINT TRIGGER zz_refuse AFTER INSERT ON ${q}.journal DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW WHEN (NEW.payload = 'refused') EXECUTE FUNCTION ${q}.refuse();`);
    const { listener, errors, box, reads } = await running(channel);
    try {
      const before = reads.count;
      await assert.rejects(appendDurable(pool, channel, 'refused', schema), /refused at commit/);
      await sendAndWait(box, channel, 'after the hole');
      assert.ok(reads.count > before, 'the seq after a hole is read');
      // A commit whose wake-up never came (as across a lost connection): triggers off, sequenced
      // by hand. The next commit's wake-up must not stand in for it.
      const client = await connect();
      try {
        await client.query('BEGIN');
        await client.query('SET LOCAL session_replication_role = replica');
        await client.query(
          `INSERT INTO ${q}.journal (channel, payload) VALUES ($1, 'unannounced')`,
          [channel],
        );
        await client.query(`INSERT INTO ${q}.commits (xid) VALUES (pg_current_xact_id())`);
        await client.query('COMMIT');
      } finally {
        await client.end();
      }
      await sendAndWait(box, channel, 'announced');
      const many = Array.from({ length: 100 }, (_, i) => `r${i}`);
      await appendDurableBatch(pool, channel, many, schema);
      const large = 'x'.repeat(10_000);
      await sendAndWait(box, channel, large);
      await sendAndWait(box, channel, 'last');
      assert.deepEqual(box.raws(), [
        'after the hole',
        'unannounced',
        'announced',
        ...many,
        large,
        'last',
      ]);
      assert.deepEqual(errors, []);
    } finally {
      await listener.stop();
      await pool.query(`DROP TRIGGER zz_refuse ON ${q}.journal; DROP FUNCTION ${q}.refuse()`);
    }
  });

  test('subscriptions on shared and distinct channels each get their rows once, in order', async () => {
    const [a, b] = [uniqueChannel('dcwa'), uniqueChannel('dcwb')];
    const { listener, errors, box, reads } = await running(a);
    try {
      const boxes = { a2: collect(), b: collect(), ab: collect() };
      const opts = { decode: 'text', durable: { after: 'now', schema } } as const;
      await listener.subscribe(a, boxes.a2.handler, opts);
      await listener.subscribe(b, boxes.b.handler, opts);
      await listener.subscribe([a, b], boxes.ab.handler, opts);
      const all = [box, boxes.a2, boxes.b, boxes.ab];
      await settle(reads, async (i) => {
        await appendDurableBatch(pool, [a, b], [`wa${i}`, `wb${i}`], schema);
        await Promise.all([
          box.wait(`wa${i}`),
          boxes.a2.wait(`wa${i}`),
          boxes.b.wait(`wb${i}`),
          boxes.ab.wait(`wb${i}`),
        ]);
      });
      for (const x of all) x.got.length = 0;
      const before = reads.count;
      for (let i = 0; i < 10; i++) {
        await appendDurable(pool, i % 2 === 0 ? a : b, `p${i}`, schema);
        await boxes.ab.wait(`p${i}`);
      }
      await box.wait('p8');
      await boxes.a2.wait('p8');
      await boxes.b.wait('p9');
      const even = ['p0', 'p2', 'p4', 'p6', 'p8'];
      assert.deepEqual(box.raws(), even);
      assert.deepEqual(boxes.a2.raws(), even);
      assert.deepEqual(boxes.b.raws(), ['p1', 'p3', 'p5', 'p7', 'p9']);
      assert.deepEqual(
        boxes.ab.raws(),
        Array.from({ length: 10 }, (_, i) => `p${i}`),
      );
      assert.equal(reads.count - before, 0);
      assert.deepEqual(errors, []);
    } finally {
      await listener.stop();
    }
  });

  test('a version 1 schema upgraded under a running listener loses nothing', async () => {
    const s = uniqueSchema('dcwup');
    made.push(s);
    await pool.query(installSql(s, MIGRATIONS.slice(0, 1), { forClient: true }));
    const channel = uniqueChannel('dcw');
    const { listener, errors, box } = await running(channel, s, true);
    try {
      await sendAndWait(box, channel, 'v1', s);
      await installSchema({ client: pool, schema: s });
      await sendAndWait(box, channel, 'v2 a', s);
      await sendAndWait(box, channel, 'v2 b', s);
      assert.deepEqual(box.raws(), ['v1', 'v2 a', 'v2 b']);
      assert.deepEqual(errors, []);
    } finally {
      await listener.stop();
    }
  });

  test('a journal dropped under a running subscription ends it with PGNOTIFY_SCHEMA_MISSING', async () => {
    const s = uniqueSchema('dcwgone');
    made.push(s);
    await installSchema({ client: pool, schema: s });
    const channel = uniqueChannel('dcw');
    const { listener, errors, sub } = await running(channel, s);
    try {
      await dropSchema(pool, s);
      // Shaped like a commit wake-up, unsigned: "read the journal".
      await pool.query('SELECT pg_notify($1, $2)', [wakeChannel(s), `${'0'.repeat(32)}[`]);
      await waitFor(() => sub?.ended, { message: 'the subscription ended' });
      assert.deepEqual(
        errors.map((e) => e.code),
        ['PGNOTIFY_SCHEMA_MISSING'],
      );
    } finally {
      await listener.stop();
    }
  });

  test("wake-ups are never decoded: 'json' and custom decoders see only journal payloads", async () => {
    const channel = uniqueChannel('dcwdec');
    const { listener, errors } = listenerRig();
    const json = collect();
    const custom = collect();
    const durable = { after: 'now', schema } as const;
    try {
      await listener.subscribe(channel, json.handler, { decode: 'json', durable });
      await listener.subscribe(channel, custom.handler, {
        decode: (raw: string) => {
          if (!raw.startsWith('{')) throw new Error(`not a journal payload: ${raw}`);
          return JSON.parse(raw) as unknown;
        },
        durable,
      });
      await listener.start();
      for (let i = 0; i < 5; i++) await appendDurable(pool, channel, JSON.stringify({ i }), schema);
      await json.atLeast(5);
      await custom.atLeast(5);
      const expected = [0, 1, 2, 3, 4].map((i) => ({ i }));
      assert.deepEqual(json.payloads(), expected);
      assert.deepEqual(custom.payloads(), expected);
      assert.deepEqual(errors, []);
    } finally {
      await listener.stop();
    }
  });
});
