/**
 * Workload (c): 20 000 concurrent notify() calls (all issued in one tick) until every
 * notification has reached one listener, a bare pg client that only counts: the same
 * receiving end for every publisher.
 */
import pg from 'pg';
import {
  benchAppName,
  benchChannel,
  budgetMs,
  type Context,
  cpuMicros,
  deadline,
  mediansOf,
  nowNs,
  type RoundContext,
  record,
  rotate,
  runAppName,
  type Samples,
  type WorkloadResult,
} from './common.js';
import {
  PUBLISH_BASELINE,
  PUBLISH_PEERS,
  PUBLISHER_STARTERS,
  PUBLISHERS,
  type PublisherName,
} from './contestants.js';
import { fmt, ratioTable } from './report.js';

interface Counter {
  /** Resolves once `n` notifications have arrived; `lastAt()` is then when the n-th did. */
  waitFor(n: number): Promise<void>;
  lastAt(): bigint;
  close(): Promise<void>;
}

async function countingListener(url: string, channel: string): Promise<Counter> {
  const client = new pg.Client({ connectionString: url, application_name: runAppName('rx') });
  client.on('error', () => undefined);
  await client.connect();
  let count = 0;
  let last = 0n;
  let target = Number.POSITIVE_INFINITY;
  let reached: (() => void) | undefined;
  client.on('notification', () => {
    count++;
    if (count >= target) {
      last = process.hrtime.bigint();
      target = Number.POSITIVE_INFINITY;
      reached?.();
    }
  });
  await client.query(`LISTEN "${channel}"`);
  return {
    waitFor(n) {
      if (count >= n) {
        last = process.hrtime.bigint();
        return Promise.resolve();
      }
      target = n;
      return new Promise((resolve) => {
        reached = resolve;
      });
    },
    lastAt: () => last,
    close: () => client.end(),
  };
}

function userPayload(i: number): Record<string, unknown> {
  return {
    id: i,
    name: `user_${i}`,
    email: `user${i}@example.com`,
    tags: ['a', 'b', 'c'],
    active: true,
  };
}

type PublishResult = { perSec: number; cpuUsPerMsg: number };

/** One measured round, in `name`'s own process (see worker.ts). */
export async function publishRound(
  ctx: RoundContext,
  name: PublisherName,
  calls: number,
): Promise<PublishResult> {
  const channel = benchChannel('pub');
  const rx = await countingListener(ctx.url, channel);
  const publisher = await PUBLISHER_STARTERS[name](ctx.url, benchAppName(`pub-${name}`));
  try {
    // Open the pools' connections first: connection setup is not what is measured.
    const warm = 20;
    await Promise.all(
      Array.from({ length: warm }, (_, i) => publisher.notify(channel, userPayload(-1 - i))),
    );
    await deadline(rx.waitFor(warm), 10_000, `${name}: warm-up notifications`);
    const payloads = Array.from({ length: calls }, (_, i) => userPayload(i));
    ctx.gc();
    const cpu0 = process.cpuUsage();
    const startedAt = nowNs();
    const all = Promise.all(payloads.map((payload) => publisher.notify(channel, payload)));
    await deadline(all, budgetMs(calls * 10), `${name}: ${calls} notify() calls`);
    await deadline(rx.waitFor(warm + calls), 30_000, `${name}: delivery of ${calls} notifications`);
    const cpu = process.cpuUsage(cpu0);
    const micros = Number(rx.lastAt() - startedAt) / 1000;
    return { perSec: (calls * 1e6) / micros, cpuUsPerMsg: cpuMicros(cpu) / calls };
  } finally {
    await publisher.close().catch(() => undefined);
    await rx.close().catch(() => undefined);
  }
}

export async function publish(ctx: Context): Promise<WorkloadResult> {
  const calls = ctx.quick ? 2_000 : 20_000;
  const publishers = ctx.pick(PUBLISHERS);
  const samples: Samples = {};
  const once = (name: PublisherName) =>
    ctx.inProcess<PublishResult>(name, 'publish', [name, calls]);
  if (!ctx.quick) {
    ctx.progress('publish: warm-up round (not recorded)');
    for (const name of publishers) await once(name);
  }
  for (let round = 0; round < ctx.rounds; round++) {
    for (const name of rotate(publishers, round)) {
      const result = await once(name);
      record(samples, name, result);
      ctx.progress(
        `publish round ${round + 1}/${ctx.rounds} ${name}: ${fmt(result.perSec)} notifications/s`,
      );
    }
  }
  const medians = mediansOf(samples);
  const title = `(c) publish: ${fmt(calls)} concurrent notify() calls until all delivered, ${ctx.rounds} round(s)`;
  return {
    key: 'publish',
    title,
    params: { calls, warmupRound: !ctx.quick, rounds: ctx.rounds },
    samples,
    medians,
    text: ratioTable(
      title,
      publishers,
      PUBLISH_BASELINE,
      PUBLISH_PEERS,
      [
        { key: 'perSec', label: 'notifications/s', better: 'higher', digits: 0 },
        { key: 'cpuUsPerMsg', label: 'CPU µs/notification', better: 'lower', digits: 2 },
      ],
      medians,
      [
        'all calls issued in one tick; time from the first call to the last receipt on a bare pg listener;',
        'pg Pool: max 10, one SELECT pg_notify($1,$2) per call; pg-listen: NOTIFY on its one connection;',
        'postgres.js: default pool (10); pgnotify: createNotifier() defaults (pool of 2, batches of up to 1 000);',
        'CPU includes the counting listener (the same for all)',
      ],
    ),
  };
}
