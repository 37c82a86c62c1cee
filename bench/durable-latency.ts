/**
 * Workload `durable-latency` (issue 14 item 9, the consuming half): sequential commit → handler
 * round trips through a pgnotify listener, for a durable subscription and for a plain one,
 * measured in one run (target: durable p50 ≤ 2× plain).
 *
 * Each round trip sends with `notify(client, channel, payload, { durable })` (pgnotify's
 * one-off notify) on a separate pg.Client in autocommit, so the statement is its own
 * transaction: hrtime before the statement, hrtime in the handler. A durable message is
 * handled after its commit (a WAL flush: it writes rows) and the commit's wake-up, which carries
 * its rows (schema version 2; a journal read only when the tail is behind); a plain one after
 * its commit (no flush: it writes nothing) and NOTIFY.
 * Not in the default `npm run bench` set; runs when named and in `--quick`.
 */
import type pg from 'pg';
import { createListener, installSchema, notify } from '../src/index.js';
import {
  benchAppName,
  benchChannel,
  type Context,
  connectedClient,
  deadline,
  errorText,
  type RoundContext,
  RUN_ID,
  rotate,
  runAppName,
  runRounds,
  userPayload,
  type WorkloadResult,
} from './common.js';
import { fmt, percentile, ratioTable } from './report.js';

/**
 * `plain + row write` is the physical floor of a durable commit: the same plain subscription,
 * sent by one hand-written statement that also inserts a row, so its commit waits for the same
 * WAL flush a durable commit waits for (a plain NOTIFY writes nothing and flushes nothing).
 */
export const LATENCY_KINDS = ['pgnotify durable', 'pgnotify plain', 'plain + row write'] as const;
export type LatencyKind = (typeof LATENCY_KINDS)[number];

/**
 * `p50`/`p99`: send → handler. `commitP50`: send → the sender's statement resolved (its commit
 * done). `afterCommitP50`: the median of handler − commit per trip, what delivery adds after the
 * commit (negative when the notification overtakes the sender's acknowledgement).
 */
type Result = { p50: number; p99: number; mean: number; commitP50: number; afterCommitP50: number };

/**
 * Sends durable messages with id -1 until one is handled (up to 5 tries, 2 s each), so that the
 * first measured trip is not the subscription's first: that one is read cold (the session's
 * first journal read prepares its statement; ~5 ms p50 here). The retries date from a bug fixed
 * in 051e343, when about 1 start in 20 missed the wake-up of the first commit after start(); a
 * check of 200 fresh listeners on this code missed none.
 */
async function prime(
  sender: pg.Client,
  channel: string,
  schema: string,
  setExpected: (id: number) => void,
  setArrived: (resolve: () => void) => void,
): Promise<void> {
  setExpected(-1);
  for (let attempt = 0; attempt < 5; attempt++) {
    const delivered = new Promise<void>((resolve) => setArrived(resolve));
    await notify(sender, channel, { id: -1 }, { durable: true, schema });
    const ok = await deadline(delivered, 2_000, 'prime').then(
      () => true,
      () => false,
    );
    if (ok) return;
  }
  throw new Error('durable-latency: no priming message was handled in 10 s');
}

/** The floor's statement: a row and a NOTIFY in one transaction. */
const floorSql = (schema: string) =>
  `WITH w AS (INSERT INTO "${schema}".floor (payload) VALUES ($2)) SELECT pg_notify($1, $2)`;

/** One measured round, in the kind's own process (see worker.ts). */
export async function durableLatencyRound(
  ctx: RoundContext,
  kind: LatencyKind,
  trips: number,
  schema: string,
): Promise<Result> {
  const durable = kind === 'pgnotify durable';
  const channel = benchChannel('dlat');
  let expected = -1;
  let arrivedAt = 0n;
  let arrived: (() => void) | undefined;
  const listener = createListener({
    connection: { connectionString: ctx.url, application_name: benchAppName('dlat-listener') },
    onError: (error) => void process.stderr.write(`durable-latency (${kind}): ${error.message}\n`),
  });
  // On a schema of its own, made for this run and empty before: 'start' replays nothing old.
  await listener.subscribe(
    channel,
    (n) => {
      if ((n.payload as { id: number }).id !== expected) return;
      arrivedAt = process.hrtime.bigint();
      arrived?.();
    },
    durable ? { durable: { after: 'start', schema } } : {},
  );
  const sender = await connectedClient(ctx.url, benchAppName('dlat-sender'));
  try {
    await listener.start();
    if (durable) {
      await prime(
        sender,
        channel,
        schema,
        (id) => {
          expected = id;
        },
        (resolve) => {
          arrived = resolve;
        },
      );
    }
    const micros: number[] = [];
    const commits: number[] = [];
    const after: number[] = [];
    for (let i = 0; i < trips; i++) {
      const payload = userPayload(i);
      expected = i;
      const delivered = new Promise<void>((resolve) => {
        arrived = resolve;
      });
      const sentAt = process.hrtime.bigint();
      let committedAt = 0n;
      const sent = (
        kind === 'plain + row write'
          ? sender.query(floorSql(schema), [channel, JSON.stringify(payload)])
          : notify(sender, channel, payload, durable ? { durable: true, schema } : {})
      ).then(() => {
        committedAt = process.hrtime.bigint();
      });
      await deadline(delivered, 10_000, `${kind}: round trip ${i}`).catch((error: unknown) => {
        const stats = listener.stats();
        throw new Error(
          `${errorText(error)} (listener ${listener.state}, ${stats.received} received, subscribers ${JSON.stringify(stats.subscribers)})`,
        );
      });
      await sent;
      micros.push(Number(arrivedAt - sentAt) / 1000);
      commits.push(Number(committedAt - sentAt) / 1000);
      after.push(Number(arrivedAt - committedAt) / 1000);
    }
    return {
      commitP50: percentile(commits, 50),
      afterCommitP50: percentile(after, 50),
      p50: percentile(micros, 50),
      p99: percentile(micros, 99),
      mean: micros.reduce((a, b) => a + b, 0) / micros.length,
    };
  } finally {
    await listener.stop().catch(() => undefined);
    await sender.end().catch(() => undefined);
  }
}

export async function durableLatency(ctx: Context): Promise<WorkloadResult> {
  const trips = ctx.quick ? 200 : 2_000;
  const schema = `bench_dlat_${RUN_ID}`;
  const admin = await connectedClient(ctx.url, runAppName('dlat-admin'));
  try {
    await installSchema({ client: admin, schema });
    await admin.query(`CREATE TABLE "${schema}".floor (payload text)`);
    const once = (kind: LatencyKind, n: number) =>
      ctx.inProcess<Result>(kind, 'durableLatency', [kind, n, schema]);
    // As in (b): one process per kind for all rounds, warmed up first (not recorded).
    if (!ctx.quick) {
      ctx.progress('durable-latency: warm-up (500 round trips per kind, not recorded)');
      for (const kind of LATENCY_KINDS) await once(kind, 500);
    }
    const { samples, medians } = await runRounds(ctx, {
      turns: (round) => rotate(LATENCY_KINDS, round),
      async measure(kind, report, label) {
        const result = await once(kind, trips);
        report(
          kind,
          result,
          `durable-latency ${label} ${kind}: p50 ${fmt(result.p50)} µs, p99 ${fmt(result.p99)} µs`,
        );
      },
    });
    const p50 = (k: LatencyKind) => medians[k]?.p50 ?? Number.NaN;
    const p99 = (k: LatencyKind) => medians[k]?.p99 ?? Number.NaN;
    const p50Ratio = p50('pgnotify durable') / p50('pgnotify plain');
    const p99Ratio = p99('pgnotify durable') / p99('pgnotify plain');
    const floorRatio = p50('pgnotify durable') / p50('plain + row write');
    const title = `(i) durable latency: ${fmt(trips)} sequential commit→handler round trips, ${ctx.rounds} round(s)`;
    return {
      key: 'durable-latency',
      title,
      params: { trips, rounds: ctx.rounds, warmup: !ctx.quick },
      samples,
      medians,
      details: {
        p50DurableVsPlain: p50Ratio,
        p99DurableVsPlain: p99Ratio,
        p50DurableVsFloor: floorRatio,
      },
      text: ratioTable(
        title,
        LATENCY_KINDS,
        'pgnotify plain',
        [],
        [
          { key: 'p50', label: 'p50 µs', better: 'lower', digits: 0 },
          { key: 'p99', label: 'p99 µs', better: 'lower', digits: 0 },
          { key: 'commitP50', label: 'commit p50 µs', better: 'lower', digits: 0 },
          { key: 'afterCommitP50', label: 'after commit p50 µs', better: 'lower', digits: 0 },
        ],
        medians,
        [
          'from before notify(client, channel, payload, { durable }) in autocommit on a separate pg.Client',
          'commit: until that call resolved; after commit: handler − commit, per trip (what delivery adds);',
          "to the handler of a pgnotify subscription (durable: { after: 'start' } / plain), hrtime, same process;",
          `durable vs plain: p50 ${p50Ratio.toFixed(2)}× (target ≤ 2), p99 ${p99Ratio.toFixed(2)}×;`,
          `durable vs plain + row write (the same WAL flush): p50 ${floorRatio.toFixed(2)}×`,
        ],
      ),
    };
  } finally {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await admin.end().catch(() => undefined);
  }
}
