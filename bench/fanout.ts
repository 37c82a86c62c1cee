/**
 * Workload (d): dispatch cost at scale. 50k notifications spread over 1, 1 000 or 10 000
 * channels by one statement from the sender child; client CPU per notification and per
 * handler call, for pgnotify, the hand-rolled pg listener and the peers.
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
import { best, fmt, ratio, table } from './report.js';

export interface Layout {
  label: string;
  channels: number;
  subscribersPerChannel: number;
  /**
   * All notifications on this one channel (number) instead of spread over all of them: the
   * server scans the same channel list per notification, so it delivers at the pace of the
   * spread layout, and what differs is only the client's dispatch over many channels.
   */
  hot?: number;
}

/**
 * The subscribers of a layout: with one subscriber per channel, one subscriber per channel;
 * with N, N subscribers that each subscribe to every channel.
 */
export function subscribersOf(prefix: string, layout: Layout): string[][] {
  const channels = Array.from({ length: layout.channels }, (_, k) => `${prefix}${k}`);
  if (layout.subscribersPerChannel === 1) return channels.map((c) => [c]);
  return Array.from({ length: layout.subscribersPerChannel }, () => channels);
}

type FanoutResult = { cpuUsPerMsg: number; cpuUsPerCall: number; msgsPerSec: number };

/** One measured round, in `name`'s own process (see worker.ts). */
export async function fanoutRound(
  ctx: RoundContext,
  name: ListenerName,
  layout: Layout,
  count: number,
): Promise<FanoutResult> {
  const prefix = `${benchChannel('fan')}_`;
  const calls = count * layout.subscribersPerChannel;
  const { cpuMicros, spanMicros } = await receive(
    ctx,
    name,
    subscribersOf(prefix, layout),
    calls,
    () =>
      layout.hot === undefined
        ? ctx.sender.spread(prefix, count, layout.channels)
        : ctx.sender.bulk(`${prefix}${layout.hot}`, count),
    `${name} ${layout.label}: ${calls} handler calls`,
  );
  return {
    cpuUsPerMsg: cpuMicros / count,
    cpuUsPerCall: cpuMicros / calls,
    msgsPerSec: ((count - 1) * 1e6) / spanMicros,
  };
}

export async function fanout(ctx: Context): Promise<WorkloadResult> {
  const count = ctx.quick ? 5_000 : 50_000;
  const listeners = ctx.pick(LISTENERS);
  const layouts: Layout[] = ctx.quick
    ? [
        { label: '1 channel × 1', channels: 1, subscribersPerChannel: 1 },
        { label: '100 channels × 10', channels: 100, subscribersPerChannel: 10 },
        { label: '1 of 1 000 channels', channels: 1_000, subscribersPerChannel: 1, hot: 500 },
        { label: '1 000 channels × 1', channels: 1_000, subscribersPerChannel: 1 },
      ]
    : [
        { label: '1 channel × 1', channels: 1, subscribersPerChannel: 1 },
        { label: '1 000 channels × 10', channels: 1_000, subscribersPerChannel: 10 },
        { label: '1 of 10 000 channels', channels: 10_000, subscribersPerChannel: 1, hot: 5_000 },
        { label: '10 000 channels × 1', channels: 10_000, subscribersPerChannel: 1 },
      ];
  const once = (name: ListenerName, layout: Layout, n: number) =>
    ctx.inProcess<FanoutResult>(name, 'fanout', [name, layout, n]);
  const { samples, medians } = await runRounds(ctx, {
    turns: (round) => rotate(listeners, round),
    async measure(name, report, label) {
      // A new process per round and contestant; every layout is warmed up by an unrecorded
      // full round in it before its measured one.
      await ctx.freshProcess(name);
      for (const layout of layouts) {
        if (!ctx.quick) await once(name, layout, count);
        const result = await once(name, layout, count);
        report(
          `${layout.label} / ${name}`,
          result,
          `fan-out ${label} ${layout.label} ${name}: ${fmt(result.cpuUsPerMsg, 3)} µs CPU/notification`,
        );
      }
    },
  });
  const first = layouts[0] as Layout;
  const rows: string[][] = [];
  for (const layout of layouts) {
    const at = (name: string, metric: string): number | undefined =>
      medians[`${layout.label} / ${name}`]?.[metric];
    const peerBest = best(
      PEERS.map((peer) => at(peer, 'cpuUsPerMsg')),
      'lower',
    );
    for (const name of listeners) {
      const value = at(name, 'cpuUsPerMsg');
      rows.push([
        layout.label,
        name,
        fmt(value, 3),
        ratio(value, at(BASELINE, 'cpuUsPerMsg')),
        ratio(value, peerBest),
        ratio(value, medians[`${first.label} / ${name}`]?.cpuUsPerMsg),
        fmt(at(name, 'cpuUsPerCall'), 3),
        fmt(at(name, 'msgsPerSec')),
      ]);
    }
  }
  const title = `(d) fan-out: ${fmt(count)} notifications spread over the channels, ${ctx.rounds} round(s)`;
  return {
    key: 'fanout',
    title,
    params: { notifications: count, layouts, rounds: ctx.rounds },
    samples,
    medians,
    text: table(
      title,
      [
        'layout',
        'contestant',
        'CPU µs/notification',
        `×${BASELINE}`,
        '×best peer',
        `×${first.label}`,
        'CPU µs/handler call',
        'msgs/s',
      ],
      rows,
      [
        'medians; CPU µs/notification = CPU / notifications sent (lower is better); per handler call = CPU / deliveries;',
        `×${first.label} = this contestant's CPU/notification here / its own with ${first.label};`,
        '"× 10": 10 subscribers each subscribed to every channel; "× 1": one subscriber per channel;',
        '"1 of N channels": one subscriber per channel, every notification on the middle one: the server',
        'scans the same channel list as with N spread, so the pace is the same and only dispatch differs;',
        'pg: a Map channel → handlers, one JSON.parse per notification; pg-listen: an EventEmitter per channel;',
        'postgres.js: sql.listen() per subscriber and channel, each handler parses the text itself;',
        'with many channels PostgreSQL itself delivers more slowly (a listening backend scans its channel list',
        'for every notification: see msgs/s), so every client reads smaller chunks and pays more per notification;',
        `×${BASELINE} compares the libraries at the same server pace; each round in a new process per contestant,`,
        `which runs every layout${ctx.quick ? '' : ' (each after an unrecorded round of it)'}`,
      ],
      2,
    ),
  };
}
