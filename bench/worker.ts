/**
 * One contestant's process: the bench runs each contestant's measured rounds (delivery,
 * latency, fan-out, publish) in a process of its own, started once per run, so that what a
 * round measures is that library alone, as in an application. In one shared process the
 * contestants would be measured with each other's JIT feedback (three of them share pg's
 * parser), garbage and timers. This process has its own bulk sender child.
 */
import { type RoundContext, type RoundName, runAppName } from './common.js';
import { deliveryRound } from './delivery.js';
import { durableLatencyRound } from './durable-latency.js';
import { durablePublishRound } from './durable-publish.js';
import { fanoutRound } from './fanout.js';
import { latencyRound } from './latency.js';
import { publishRound } from './publish.js';
import { serve } from './rpc.js';
import { Sender } from './sender.js';

// biome-ignore lint/suspicious/noExplicitAny: each round function checks its own arguments' types at the call site in its workload
const ROUNDS: Record<RoundName, (rc: RoundContext, ...args: any[]) => Promise<unknown>> = {
  delivery: deliveryRound,
  latency: latencyRound,
  fanout: fanoutRound,
  publish: publishRound,
  durablePublish: durablePublishRound,
  durableLatency: durableLatencyRound,
};

const url = process.env.DATABASE_URL ?? '';
let context: RoundContext | undefined;

await serve<{ round: RoundName; args: unknown[] }>(
  async () => {
    const sender = await Sender.start(url, runAppName(`sender-${process.env.PGNOTIFY_BENCH_TAG}`));
    context = { url, sender };
  },
  ({ round, args }) => ROUNDS[round](context as RoundContext, ...args),
  async () => context?.sender.close(),
);
