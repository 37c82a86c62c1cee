/**
 * Workload (h), `durable-publish` (issue 14 item 9, the publishing half): concurrent publish
 * calls (all issued in one tick) until every one has committed, measured in one run for
 *
 *   - pgnotify durable: `notifier.notify(channel, payload, { durable: true })` (journal rows);
 *   - pgnotify plain: `notifier.notify(channel, payload)` through the same notifier settings;
 *   - hand-rolled trigger: what teams write by hand today, an INSERT per message (one
 *     statement each, on a pg Pool of 10) into a table whose AFTER INSERT trigger calls
 *     pg_notify.
 *
 * Targets: durable ≥ 0.5× plain, ≥ 20× hand-rolled; journal bytes per message (journal +
 * commits, pg_total_relation_size, over the rows of the measured round) reported. Not in the
 * default `npm run bench` set (about a minute more); runs when named and in `--quick`.
 */
import pg from 'pg';
import { createNotifier } from '../src/index.js';
import { installSchema } from '../src/journal.js';
import { quoteIdent } from '../src/sql.js';
import {
  benchAppName,
  benchChannel,
  budgetMs,
  type Context,
  connectedClient,
  cpuMicros,
  deadline,
  nowNs,
  type RoundContext,
  RUN_ID,
  rotate,
  runAppName,
  runRounds,
  userPayload,
  type WorkloadResult,
} from './common.js';
import { fmt, ratioTable } from './report.js';

export const DURABLE_PUBLISHERS = [
  'pgnotify durable',
  'pgnotify plain',
  'hand-rolled trigger',
] as const;
export type DurablePublisher = (typeof DURABLE_PUBLISHERS)[number];

type Result = { perSec: number; cpuUsPerMsg: number };

interface Publisher {
  notify(channel: string, payload: unknown): Promise<unknown>;
  close(): Promise<void>;
}

function start(url: string, name: DurablePublisher, schema: string): Publisher {
  const appName = benchAppName(`dpub-${name}`);
  if (name === 'hand-rolled trigger') {
    const pool = new pg.Pool({ connectionString: url, application_name: appName, max: 10 });
    pool.on('error', () => undefined);
    const sql = `INSERT INTO ${quoteIdent(schema)}.handrolled (channel, payload) VALUES ($1, $2)`;
    return {
      notify: (channel, p) => pool.query(sql, [channel, JSON.stringify(p)]),
      close: () => pool.end(),
    };
  }
  const notifier = createNotifier({
    connection: { connectionString: url, application_name: appName },
    schema,
  });
  const durable = name === 'pgnotify durable';
  return {
    notify: (channel, p) => notifier.notify(channel, p, { durable }),
    close: () => notifier.close(),
  };
}

/** One measured round, in `name`'s own process (see worker.ts). */
export async function durablePublishRound(
  ctx: RoundContext,
  name: DurablePublisher,
  calls: number,
  schema: string,
): Promise<Result> {
  const channel = benchChannel('dpub');
  const publisher = start(ctx.url, name, schema);
  try {
    // Open the pools' connections first: connection setup is not what is measured.
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => publisher.notify(channel, userPayload(-i))),
    );
    const payloads = Array.from({ length: calls }, (_, i) => userPayload(i));
    const cpu0 = process.cpuUsage();
    const startedAt = nowNs();
    await deadline(
      Promise.all(payloads.map((p) => publisher.notify(channel, p))),
      Math.max(budgetMs(calls * 10), calls * 20),
      `${name}: ${calls} calls`,
    );
    const micros = Number(nowNs() - startedAt) / 1000;
    const cpu = process.cpuUsage(cpu0);
    return { perSec: (calls * 1e6) / micros, cpuUsPerMsg: cpuMicros(cpu) / calls };
  } finally {
    await publisher.close().catch(() => undefined);
  }
}

/** The journal schema and the hand-rolled table with its trigger, made for this run. */
async function prepare(admin: pg.Client, schema: string): Promise<void> {
  await installSchema({ client: admin, schema });
  const q = quoteIdent(schema);
  await admin.query(`
CREATE TABLE ${q}.handrolled (
  id bigserial PRIMARY KEY,
  channel text NOT NULL,
  payload text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION ${q}.handrolled_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify(NEW.channel, NEW.payload);
  RETURN NULL;
END $$;
CREATE TRIGGER handrolled_notify AFTER INSERT ON ${q}.handrolled
  FOR EACH ROW EXECUTE FUNCTION ${q}.handrolled_notify();`);
}

/** Bytes per row of what the measured round left: the journal with commits, or the hand-rolled table. */
async function bytesPerRow(admin: pg.Client, schema: string, durable: boolean): Promise<number> {
  const q = quoteIdent(schema);
  const sql = durable
    ? `SELECT (pg_total_relation_size('${q}.journal') + pg_total_relation_size('${q}.commits'))::float8 AS bytes,
         (SELECT count(*) FROM ${q}.journal)::float8 AS rows`
    : `SELECT pg_total_relation_size('${q}.handrolled')::float8 AS bytes,
         (SELECT count(*) FROM ${q}.handrolled)::float8 AS rows`;
  const { rows } = await admin.query<{ bytes: number; rows: number }>(sql);
  const r = rows[0];
  return r === undefined || r.rows === 0 ? Number.NaN : r.bytes / r.rows;
}

export async function durablePublish(ctx: Context): Promise<WorkloadResult> {
  const calls = ctx.quick ? 2_000 : 20_000;
  // The ratios are between these three: --only does not thin them out.
  const publishers = [...DURABLE_PUBLISHERS];
  const schema = `bench_journal_${RUN_ID}`;
  const admin = await connectedClient(ctx.url, runAppName('dpub-admin'));
  const q = quoteIdent(schema);
  try {
    await prepare(admin, schema);
    // One statement (and commit) per message runs at 1 000/s (fsync on) to 8 000/s (fsync off)
    // where the others run at 100 000/s: a tenth of the calls measures its rate as well, in a
    // tenth of the time.
    const callsOf = (name: DurablePublisher) =>
      name === 'hand-rolled trigger' ? Math.max(100, calls / 10) : calls;
    const once = (name: DurablePublisher) =>
      ctx.inProcess<Result>(name, 'durablePublish', [name, callsOf(name), schema]);
    const { samples, medians } = await runRounds(ctx, {
      turns: (round) => rotate(publishers, round),
      async measure(name, report, label) {
        await ctx.freshProcess(name);
        if (!ctx.quick) await once(name);
        // Sizes count only the measured round's rows (and its 20 warm-up calls).
        await admin.query(`TRUNCATE ${q}.journal, ${q}.commits, ${q}.handrolled`);
        const result = await once(name);
        const bytes =
          name === 'pgnotify plain'
            ? {}
            : { bytesPerMsg: await bytesPerRow(admin, schema, name === 'pgnotify durable') };
        report(
          name,
          { ...result, ...bytes },
          `durable-publish ${label} ${name}: ${fmt(result.perSec)} messages/s`,
        );
      },
    });
    const rate = (n: DurablePublisher) => medians[n]?.perSec ?? Number.NaN;
    const vsPlain = rate('pgnotify durable') / rate('pgnotify plain');
    const vsHand = rate('pgnotify durable') / rate('hand-rolled trigger');
    const title = `(h) durable publish: ${fmt(calls)} concurrent calls until all committed, ${ctx.rounds} round(s)`;
    return {
      key: 'durable-publish',
      title,
      params: {
        calls,
        handRolledCalls: callsOf('hand-rolled trigger'),
        warmupRound: !ctx.quick,
        rounds: ctx.rounds,
      },
      samples,
      medians,
      details: { durableVsPlain: vsPlain, durableVsHandRolled: vsHand },
      text: ratioTable(
        title,
        publishers,
        'pgnotify plain',
        ['hand-rolled trigger'],
        [
          { key: 'perSec', label: 'messages/s', better: 'higher', digits: 0 },
          { key: 'cpuUsPerMsg', label: 'CPU µs/message', better: 'lower', digits: 2 },
          { key: 'bytesPerMsg', label: 'bytes/message', better: 'lower', digits: 0 },
        ],
        medians,
        [
          'all calls issued in one tick; time from the first call until every call has resolved (committed);',
          'pgnotify: createNotifier() defaults (pool of 2, batches of up to 1 000), durable or plain per call;',
          'hand-rolled trigger: one INSERT per message on a pg Pool of 10 into a table whose AFTER INSERT',
          `trigger calls pg_notify(channel, payload), the pattern teams write by hand (${fmt(callsOf('hand-rolled trigger'))} calls:`,
          'a statement and a commit per message, whose rate does not depend on the count);',
          'bytes/message: pg_total_relation_size of the journal + commits (durable) or of the table',
          '(hand-rolled) over its rows, after the measured round alone;',
          `durable vs plain ${vsPlain.toFixed(2)}× (target ≥ 0.5), vs hand-rolled ${vsHand.toFixed(1)}× (target ≥ 20)`,
        ],
      ),
    };
  } finally {
    await admin.query(`DROP SCHEMA IF EXISTS ${q} CASCADE`).catch(() => undefined);
    await admin.end().catch(() => undefined);
  }
}
