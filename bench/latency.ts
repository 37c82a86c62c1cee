/**
 * Workload (b): sequential single notify → handler round trips. Sent with
 * `SELECT pg_notify($1, $2)` on a separate pg.Client in the contestant's process; hrtime
 * before the query and in the handler.
 */
import {
  benchAppName,
  benchChannel,
  type Context,
  connectedClient,
  deadline,
  type RoundContext,
  rotate,
  runRounds,
  userPayload,
  type WorkloadResult,
  withListener,
} from './common.js';
import { BASELINE, LISTENERS, type ListenerName, PEERS } from './contestants.js';
import { fmt, percentile, ratioTable } from './report.js';

type LatencyResult = { p50: number; p99: number; mean: number };

/**
 * One measured round, in `name`'s own process (see worker.ts), with a sender pg.Client of its
 * own in that process.
 */
export async function latencyRound(
  ctx: RoundContext,
  name: ListenerName,
  trips: number,
): Promise<LatencyResult> {
  const channel = benchChannel('lat');
  let expected = -1;
  let arrivedAt = 0n;
  let arrived: (() => void) | undefined;
  const onPayload = (payload: unknown): void => {
    if ((payload as { id: number }).id !== expected) return;
    arrivedAt = process.hrtime.bigint();
    arrived?.();
  };
  const sender = await connectedClient(ctx.url, benchAppName('latency-sender'));
  try {
    return await withListener(
      name,
      { url: ctx.url, subscribers: [[channel]], onPayload },
      async () => {
        const micros: number[] = [];
        for (let i = 0; i < trips; i++) {
          const payload = JSON.stringify(userPayload(i));
          expected = i;
          const delivered = new Promise<void>((resolve) => {
            arrived = resolve;
          });
          const sentAt = process.hrtime.bigint();
          const query = sender.query('SELECT pg_notify($1, $2)', [channel, payload]);
          await deadline(delivered, 10_000, `${name}: round trip ${i}`);
          await query;
          micros.push(Number(arrivedAt - sentAt) / 1000);
        }
        return {
          p50: percentile(micros, 50),
          p99: percentile(micros, 99),
          mean: micros.reduce((a, b) => a + b, 0) / micros.length,
        };
      },
    );
  } finally {
    await sender.end().catch(() => undefined);
  }
}

export async function latency(ctx: Context): Promise<WorkloadResult> {
  const trips = ctx.quick ? 200 : 2_000;
  const listeners = ctx.pick(LISTENERS);
  const once = (name: ListenerName, n: number) =>
    ctx.inProcess<LatencyResult>(name, 'latency', [name, n]);
  // Unlike the throughput workloads, latency keeps one process per contestant for all its
  // rounds: in a new process the heap is still growing, and its major collections put every
  // contestant's p99 near 1 ms even after 5 000 warm-up round trips (measured), which says
  // nothing about the library.
  if (!ctx.quick) {
    ctx.progress('latency: warm-up (500 round trips per contestant, not recorded)');
    for (const name of listeners) await once(name, 500);
  }
  const { samples, medians } = await runRounds(ctx, {
    turns: (round) => rotate(listeners, round),
    async measure(name, report, label) {
      const result = await once(name, trips);
      report(
        name,
        result,
        `latency ${label} ${name}: p50 ${fmt(result.p50)} µs, p99 ${fmt(result.p99)} µs`,
      );
    },
  });
  const title = `(b) latency: ${fmt(trips)} sequential notify→handler round trips, ${ctx.rounds} round(s)`;
  return {
    key: 'latency',
    title,
    params: { trips, rounds: ctx.rounds },
    samples,
    medians,
    text: ratioTable(
      title,
      listeners,
      BASELINE,
      PEERS,
      [
        { key: 'p50', label: 'p50 µs', better: 'lower', digits: 0 },
        { key: 'p99', label: 'p99 µs', better: 'lower', digits: 0 },
      ],
      medians,
      [
        "from before `SELECT pg_notify($1,$2)` on a separate pg.Client in the contestant's process to the handler (hrtime)",
      ],
    ),
  };
}
