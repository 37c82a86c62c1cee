/**
 * Workload `durable-catchup`, the consumer, in a fresh process so its RSS says only what the
 * catch-up costs:
 * `node --import tsx --expose-gc bench/durable-catchup-child.ts <schema> <channel> <total> <plainChannel> <plainTotal> <appName>`.
 *
 * Over IPC: `ready` (plain subscription live) → the parent sends `plainTotal` plain
 * notifications → `plain` (rate) → the parent says `go` → a named durable consumer
 * (`startAt: 'start'`) reads the `total`-message backlog the parent wrote → `result` (rate,
 * RSS before/peak/after).
 */
import { createListener } from '../src/index.js';

const [schema, channel, totalText, plainChannel, plainTotalText, appName] = process.argv.slice(2);
const total = Number(totalText);
const plainTotal = Number(plainTotalText);
const url = process.env.DATABASE_URL;
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

function send(message: unknown): void {
  if (process.connected) process.send?.(message);
}

function fullGc(): void {
  gc();
  gc();
}

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
    send({
      type: 'result',
      plainPerSec,
      durablePerSec: (total * 1e9) / Number(endedAt - startedAt),
      firstMs: Number(durable.firstAt - startedAt) / 1e6,
      received: durable.count,
      checksumOk: durable.checksum === expectedSum,
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
