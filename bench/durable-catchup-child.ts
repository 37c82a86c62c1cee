/**
 * Workload `durable-catchup`, the consumer, in a fresh process so its RSS says only what the
 * catch-up costs:
 * `node --import tsx --expose-gc bench/durable-catchup-child.ts <schema> <channel> <total> <plainChannel> <plainTotal> <appName>`.
 *
 * Over IPC: `ready` (plain subscription live) → the parent sends `plainTotal` plain
 * notifications → `plain` (rate) → the parent says `go` → a named durable consumer
 * (`startAt: 'start'`) reads the `total`-message backlog the parent wrote → `result` (rate,
 * RSS before/peak/after, and the rate of a hand-written read of the same backlog).
 */
import pg from 'pg';
import { createListener } from '../src/index.js';
import { quoteIdent } from '../src/sql.js';
import { fullGc, send } from './child-ipc.js';

const [schema, channel, totalText, plainChannel, plainTotalText, appName] = process.argv.slice(2);
const total = Number(totalText);
const plainTotal = Number(plainTotalText);
const url = process.env.DATABASE_URL;

/** Resolves on the parent's `{ type }` message. */
function parentSays(type: string): Promise<void> {
  return new Promise((resolve) => {
    const onMessage = (message: { type?: string }): void => {
      if (message.type !== type) return;
      process.off('message', onMessage);
      resolve();
    };
    process.on('message', onMessage);
  });
}

/** Counts handler calls (reading each payload's id) and records the first and last times. */
function counter(expected: number) {
  let count = 0;
  let checksum = 0;
  let firstAt = 0n;
  let lastAt = 0n;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  return {
    finished,
    onPayload(payload: unknown): void {
      checksum += (payload as { id: number }).id;
      count++;
      if (count === 1) firstAt = process.hrtime.bigint();
      if (count === expected) {
        lastAt = process.hrtime.bigint();
        done();
      }
    },
    get count() {
      return count;
    },
    get checksum() {
      return checksum;
    },
    get firstAt() {
      return firstAt;
    },
    get lastAt() {
      return lastAt;
    },
  };
}

/**
 * The least a journal reader must do, written by hand on a pg.Client of its own: keyset pages of
 * 1 000 rows in journal order (commit seq, then id; the same LATERAL index path as readJournal),
 * each payload JSON-parsed and its id summed. No buffer, no cursor writes, no gaps, no byte
 * budget: the reference the durable consumer's rate is compared with.
 */
async function bareRead(): Promise<{ perSec: number; checksum: number }> {
  const q = quoteIdent(schema as string);
  const sql = `SELECT c.seq::text AS seq, j.id::text AS id, j.payload FROM ${q}.commits AS c
    CROSS JOIN LATERAL (SELECT r.id, r.payload FROM ${q}.journal AS r WHERE r.xid = c.xid
      AND r.id > CASE WHEN c.seq = $1::bigint THEN $2::bigint ELSE 0 END ORDER BY r.id LIMIT 1000) AS j
    WHERE c.seq >= $1::bigint ORDER BY c.seq, j.id LIMIT 1000`;
  const client = new pg.Client({ connectionString: url, application_name: appName });
  await client.connect();
  try {
    await client.query('SET jit = off');
    let seq = '0';
    let id = '0';
    let count = 0;
    let checksum = 0;
    const startedAt = process.hrtime.bigint();
    for (;;) {
      const { rows } = await client.query<{ seq: string; id: string; payload: string }>(sql, [
        seq,
        id,
      ]);
      for (const row of rows) checksum += (JSON.parse(row.payload) as { id: number }).id;
      count += rows.length;
      const last = rows[rows.length - 1];
      if (last === undefined) break;
      seq = last.seq;
      id = last.id;
    }
    return { perSec: (count * 1e9) / Number(process.hrtime.bigint() - startedAt), checksum };
  } finally {
    await client.end();
  }
}

// The parent is gone (finished, interrupted or crashed): do not linger.
process.on('disconnect', () => process.exit(process.exitCode ?? 0));

async function main(): Promise<void> {
  if (schema === undefined || channel === undefined || plainChannel === undefined)
    throw new Error('usage: <schema> <channel> <total> <plainChannel> <plainTotal> <appName>');
  let errors = 0;
  const listener = createListener({
    connection: { connectionString: url, application_name: appName },
    onError: () => {
      errors++;
    },
  });
  try {
    const plain = counter(plainTotal);
    const plainSub = await listener.subscribe(plainChannel, (n) => plain.onPayload(n.payload));
    await listener.start();
    send({ type: 'ready' });
    await plain.finished;
    const plainPerSec = ((plainTotal - 1) * 1e9) / Number(plain.lastAt - plain.firstAt);
    await plainSub.unsubscribe();
    send({ type: 'plain', plainPerSec });

    await parentSays('go');
    fullGc();
    const before = process.memoryUsage();
    let peakRss = before.rss;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
    }, 20);
    const durable = counter(total);
    const startedAt = process.hrtime.bigint();
    const sub = await listener.subscribe(channel, (n) => durable.onPayload(n.payload), {
      durable: { consumer: `bench-catchup-${appName}`, startAt: 'start', schema },
    });
    const giveUp = setTimeout(
      () => send({ type: 'error', error: `only ${durable.count} of ${total} after 10 min` }),
      10 * 60_000,
    );
    await durable.finished;
    clearTimeout(giveUp);
    clearInterval(sampler);
    const endedAt = durable.lastAt;
    await sub.unsubscribe(); // stores the consumer's final cursor
    await new Promise((resolve) => setImmediate(resolve));
    fullGc();
    const after = process.memoryUsage();
    peakRss = Math.max(peakRss, after.rss);
    const expectedSum = (total * (total + 1)) / 2;
    const bare = await bareRead();
    send({
      type: 'result',
      plainPerSec,
      durablePerSec: (total * 1e9) / Number(endedAt - startedAt),
      firstMs: Number(durable.firstAt - startedAt) / 1e6,
      received: durable.count,
      checksumOk: durable.checksum === expectedSum && bare.checksum === expectedSum,
      bareReadPerSec: bare.perSec,
      rssBefore: before.rss,
      rssAfter: after.rss,
      peakRss,
      heapBefore: before.heapUsed,
      heapAfter: after.heapUsed,
      errors,
    });
  } finally {
    await listener.stop();
  }
}

main().then(
  () => process.disconnect?.(),
  (error: unknown) => {
    send({ type: 'error', error: error instanceof Error ? error.message : String(error) });
    process.exitCode = 1;
    process.disconnect?.();
  },
);
