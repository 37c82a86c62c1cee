/**
 * Workload (c): 20 000 concurrent notify() calls (all issued in one tick) until every
 * notification has reached one listener, a bare pg client that only counts, in a process of
 * its own: the same receiving end for every publisher.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  benchAppName,
  benchChannel,
  budgetMs,
  type Context,
  cpuMicros,
  deadline,
  nowNs,
  type RoundContext,
  rotate,
  runRounds,
  userPayload,
  type WorkloadResult,
} from './common.js';
import {
  PUBLISH_BASELINE,
  PUBLISH_PEERS,
  PUBLISHER_STARTERS,
  PUBLISHERS,
  type PublisherName,
} from './contestants.js';
import { fmt, median, ratioTable } from './report.js';
import { Rpc } from './rpc.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** The counting listener, in a child process of its own (counter-child.ts). */
class Counter {
  private constructor(private readonly rpc: Rpc) {}

  static async start(url: string, channel: string): Promise<Counter> {
    const rpc = await Rpc.start(
      path.join(HERE, 'counter-child.ts'),
      [benchAppName('rx'), channel],
      { DATABASE_URL: url },
      'counting listener',
    );
    return new Counter(rpc);
  }

  /** Resolves once `n` notifications have arrived, with the hrtime of the n-th. */
  async waitFor(n: number): Promise<bigint> {
    return BigInt(await this.rpc.request<string>({ n }));
  }

  close(): Promise<void> {
    return this.rpc.close();
  }
}

type PublishResult = { perSec: number; cpuUsPerMsg: number };

/** One measured round, in `name`'s own process (see worker.ts). */
export async function publishRound(
  ctx: RoundContext,
  name: PublisherName,
  calls: number,
): Promise<PublishResult> {
  const channel = benchChannel('pub');
  const rx = await Counter.start(ctx.url, channel);
  const publisher = await PUBLISHER_STARTERS[name](ctx.url, benchAppName(`pub-${name}`));
  try {
    // Open the pools' connections first: connection setup is not what is measured.
    const warm = 20;
    await Promise.all(
      Array.from({ length: warm }, (_, i) => publisher.notify(channel, userPayload(-1 - i))),
    );
    await deadline(rx.waitFor(warm), 10_000, `${name}: warm-up notifications`);
    const payloads = Array.from({ length: calls }, (_, i) => userPayload(i));
    const cpu0 = process.cpuUsage();
    const startedAt = nowNs();
    const all = Promise.all(payloads.map((payload) => publisher.notify(channel, payload)));
    await deadline(all, budgetMs(calls * 10), `${name}: ${calls} notify() calls`);
    const lastAt = await deadline(
      rx.waitFor(warm + calls),
      30_000,
      `${name}: delivery of ${calls} notifications`,
    );
    const cpu = process.cpuUsage(cpu0);
    const micros = Number(lastAt - startedAt) / 1000;
    return { perSec: (calls * 1e6) / micros, cpuUsPerMsg: cpuMicros(cpu) / calls };
  } finally {
    await publisher.close().catch(() => undefined);
    await rx.close().catch(() => undefined);
  }
}

/**
 * The reference for what this machine and server can do: the same number of notifications
 * in ONE statement (`SELECT pg_notify(…) FROM generate_series(…)`, the sender child's bulk
 * statement), no client work at all, until the same counting listener has them all. Not a
 * hard ceiling: one statement commits before the first delivery, while batches overlap
 * delivery with sending. Measured in the bench's own process with its sender child.
 */
async function oneStatementRound(ctx: Context, calls: number): Promise<number> {
  const channel = benchChannel('pubmax');
  const rx = await Counter.start(ctx.url, channel);
  try {
    const startedAt = nowNs();
    const sent = ctx.sender.bulk(channel, calls);
    const lastAt = await deadline(rx.waitFor(calls), 30_000, `one statement of ${calls}`);
    await sent;
    return (calls * 1e6) / (Number(lastAt - startedAt) / 1000);
  } finally {
    await rx.close().catch(() => undefined);
  }
}

export async function publish(ctx: Context): Promise<WorkloadResult> {
  const calls = ctx.quick ? 2_000 : 20_000;
  const publishers = ctx.pick(PUBLISHERS);
  const once = (name: PublisherName) =>
    ctx.inProcess<PublishResult>(name, 'publish', [name, calls]);
  const oneStatement: number[] = [];
  const { samples, medians } = await runRounds(ctx, {
    turns: (round) => rotate(publishers, round),
    async measure(name, report, label) {
      // A new process per measured round, warmed up by an unrecorded round.
      await ctx.freshProcess(name);
      if (!ctx.quick) await once(name);
      const result = await once(name);
      report(name, result, `publish ${label} ${name}: ${fmt(result.perSec)} notifications/s`);
    },
    async afterRound(round, label) {
      oneStatement.push(await oneStatementRound(ctx, calls));
      ctx.progress(`publish ${label} one statement: ${fmt(oneStatement[round])} notifications/s`);
    },
  });
  const reference = median(oneStatement);
  const share = (name: string): string => {
    const rate = medians[name]?.perSec;
    return rate === undefined ? '—' : `${Math.round((100 * rate) / reference)} %`;
  };
  const title = `(c) publish: ${fmt(calls)} concurrent notify() calls until all delivered, ${ctx.rounds} round(s)`;
  return {
    key: 'publish',
    title,
    params: { calls, warmupRound: !ctx.quick, rounds: ctx.rounds },
    samples,
    medians,
    details: { oneStatementPerSec: oneStatement },
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
        "the counting listener runs in a process of its own; CPU is the publisher's process only;",
        `each round in a new process per publisher${ctx.quick ? '' : ', after an unrecorded round in it'};`,
        `reference, no client work: the same ${fmt(calls)} in ONE statement (pg_notify over generate_series)`,
        `to the same counter: ${fmt(reference)}/s (median); pgnotify reaches ${share('pgnotify')} of it, postgres.js ${share('postgres.js')}`,
      ],
    ),
  };
}
