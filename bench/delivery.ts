/**
 * Workload (a): 100k ~120-byte JSON notifications to one subscriber, sent by one statement
 * from the sender child. Throughput from the first to the last receipt; client CPU per
 * notification from `process.cpuUsage()` between the send and the last receipt.
 */
import {
  benchChannel,
  type Context,
  type RoundContext,
  receive,
  rotate,
  runRounds,
  type WorkloadResult,
} from './common.js';
import { BASELINE, LISTENERS, type ListenerName, PEERS } from './contestants.js';
import { fmt, ratioTable } from './report.js';

type DeliveryResult = { msgsPerSec: number; cpuUsPerMsg: number };

/** One measured round, in `name`'s own process (see worker.ts). */
export async function deliveryRound(
  ctx: RoundContext,
  name: ListenerName,
  count: number,
): Promise<DeliveryResult> {
  const channel = benchChannel('dlv');
  const { cpuMicros, spanMicros } = await receive(
    ctx,
    name,
    [[channel]],
    count,
    () => ctx.sender.bulk(channel, count),
    `${name}: ${count} notifications`,
  );
  return { msgsPerSec: ((count - 1) * 1e6) / spanMicros, cpuUsPerMsg: cpuMicros / count };
}

export async function delivery(ctx: Context): Promise<WorkloadResult> {
  const count = ctx.quick ? 5_000 : 100_000;
  const listeners = ctx.pick(LISTENERS);
  const once = (name: ListenerName) =>
    ctx.inProcess<DeliveryResult>(name, 'delivery', [name, count]);
  // Every measured round runs in a new process, after unrecorded full rounds in it: the JIT
  // keeps improving pg's parser and each library's handler path for well over 100k
  // notifications (in every process, the first two rounds are the slowest).
  const warmups = ctx.quick ? 0 : 2;
  const { samples, medians } = await runRounds(ctx, {
    turns: (round) => rotate(listeners, round),
    async measure(name, report, label) {
      await ctx.freshProcess(name);
      for (let w = 0; w < warmups; w++) await once(name);
      const result = await once(name);
      report(
        name,
        result,
        `delivery ${label} ${name}: ${fmt(result.msgsPerSec)} msgs/s, ${fmt(result.cpuUsPerMsg, 3)} µs CPU/notification`,
      );
    },
  });
  const title = `(a) delivery: ${fmt(count)} JSON notifications (~120 B) to one subscriber, ${ctx.rounds} round(s)`;
  return {
    key: 'delivery',
    title,
    params: { notifications: count, warmupRounds: warmups, rounds: ctx.rounds },
    samples,
    medians,
    text: ratioTable(
      title,
      listeners,
      BASELINE,
      PEERS,
      [
        { key: 'cpuUsPerMsg', label: 'CPU µs/notification', better: 'lower', digits: 3 },
        { key: 'msgsPerSec', label: 'msgs/s', better: 'higher', digits: 0 },
      ],
      medians,
      [
        `each round in a new process per contestant, after ${warmups} unrecorded round(s) in it;`,
        'one statement from a separate connection in a child process; msgs/s from first to last receipt;',
        "CPU = process.cpuUsage() (user+system, all threads) of the contestant's own process, from the send to the last receipt",
      ],
    ),
  };
}
