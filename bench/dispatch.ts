/**
 * Workload `dispatch` (not in the default set: `npm run bench -- dispatch`): the library's own
 * cost per notification without the server. Synthetic 'notification' events are emitted on a
 * real, connected pg.Client, the way pg's parser emits them (fresh channel and payload strings
 * per notification), so only the listener's dispatch work plus JSON.parse is timed. Much less
 * noisy than (a), which is what a hot-path change needs to be judged by.
 */
import pg from 'pg';
import { createListener } from '../src/index.js';
import {
  benchAppName,
  benchChannel,
  type Context,
  connectedClient,
  cpuMicros,
  rotate,
  runRounds,
  Sink,
  userPayload,
  type WorkloadResult,
} from './common.js';
import { fmt, ratioTable } from './report.js';

const CONTESTANTS = ['pg', 'pgnotify'] as const;
type Name = (typeof CONTESTANTS)[number];

const PAYLOADS = Array.from({ length: 1000 }, (_, i) =>
  Buffer.from(JSON.stringify(userPayload(i))),
);

/** Emits `count` notifications on `client` and returns the CPU µs per notification. */
function emitAll(client: pg.Client, channel: string, sink: Sink): number {
  const count = sink.expected;
  const name = Buffer.from(channel);
  sink.arm();
  for (let i = 0; i < count; i++) {
    client.emit('notification', {
      name: 'notification',
      length: 0,
      processId: 1,
      channel: name.toString('utf8'),
      payload: (PAYLOADS[i % PAYLOADS.length] as Buffer).toString('utf8'),
    });
  }
  if (sink.count !== count) throw new Error(`dispatch: ${sink.count} of ${count} delivered`);
  return cpuMicros(sink.cpu as NodeJS.CpuUsage) / count;
}

async function once(ctx: Context, name: Name, count: number): Promise<number> {
  const channel = benchChannel('dsp');
  const sink = new Sink(count);
  if (name === 'pg') {
    const client = await connectedClient(ctx.url, benchAppName(name));
    try {
      client.on('notification', (m) => sink.onPayload(JSON.parse(m.payload as string)));
      return emitAll(client, channel, sink);
    } finally {
      await client.end();
    }
  }
  let client: pg.Client | undefined;
  const listener = createListener({
    connection: () => {
      client = new pg.Client({ connectionString: ctx.url, application_name: benchAppName(name) });
      return client;
    },
    heartbeat: false,
  });
  try {
    await listener.subscribe(channel, (n) => sink.onPayload(n.payload));
    await listener.start();
    return emitAll(client as pg.Client, channel, sink);
  } finally {
    await listener.stop();
  }
}

export async function dispatch(ctx: Context): Promise<WorkloadResult> {
  const count = ctx.quick ? 20_000 : 1_000_000;
  const contestants = ctx.pick(CONTESTANTS);
  if (!ctx.quick) for (const name of contestants) await once(ctx, name, count);
  const rounds = Math.max(ctx.rounds, ctx.quick ? 1 : 9);
  const { samples, medians } = await runRounds(ctx, {
    rounds,
    turns: (round) => rotate(contestants, round),
    async measure(name, report, label) {
      const cpuUsPerMsg = await once(ctx, name, count);
      report(
        name,
        { cpuUsPerMsg },
        `dispatch ${label} ${name}: ${fmt(cpuUsPerMsg, 3)} µs CPU/notification`,
      );
    },
  });
  const pgnotify = medians.pgnotify?.cpuUsPerMsg;
  const pgCost = medians.pg?.cpuUsPerMsg;
  const title = `(dispatch) ${fmt(count)} synthetic notifications emitted on a pg.Client, no server, ${rounds} round(s)`;
  return {
    key: 'dispatch',
    title,
    params: { notifications: count, rounds },
    samples,
    medians,
    text: ratioTable(
      title,
      contestants,
      'pg',
      [],
      [{ key: 'cpuUsPerMsg', label: 'CPU µs/notification', better: 'lower', digits: 3 }],
      medians,
      [
        'fresh channel and payload strings per notification, as pg makes them; includes JSON.parse;',
        `pgnotify's own cost: ${pgnotify !== undefined && pgCost !== undefined ? `${fmt(pgnotify - pgCost, 3)} µs per notification` : '—'}`,
      ],
    ),
  };
}
