/**
 * Workload `durable-catchup` (issue 14 item 9, the consuming half): a named durable consumer
 * catching up a backlog of 1 000 000 journal messages (20 000 with --quick), against the plain
 * delivery rate measured in the same run and in the same process (target ≥ 0.5×), with the
 * consumer's RSS growth (target < 100 MB) and the journal's bytes per message.
 *
 * The backlog is written before the consumer starts, in statements of 1 000 rows, the
 * notifier's largest durable batch (`INSERT INTO <schema>.journal … SELECT … FROM
 * generate_series`: the commit trigger sequences each statement's transaction, as it does every
 * durable write), ~120-byte JSON payloads as in (a). The consumer runs in a fresh child process (durable-catchup-child.ts): first a plain
 * subscription receives the bench's bulk statement (the plain rate, first to last receipt),
 * then `subscribe(channel, handler, { durable: { consumer, startAt: 'start' } })` reads the
 * backlog (the durable rate, from the subscribe call to the last handler call, acknowledgements
 * included); RSS sampled every 20 ms, growth = after a full GC at the end − after a full GC
 * before subscribing. One round. Not in the default `npm run bench` set (about a minute at
 * full size); runs when named and in `--quick`.
 */
import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { installSchema } from '../src/index.js';
import { quoteIdent } from '../src/sql.js';
import { nextMessage } from './child-ipc.js';
import {
  benchChannel,
  type Context,
  connectedClient,
  deadline,
  RUN_ID,
  runAppName,
  runRounds,
  type WorkloadResult,
} from './common.js';
import { fmt, table } from './report.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MB = 1024 * 1024;
/**
 * Rows per backlog statement (one transaction each): the notifier's largest durable batch, so
 * the backlog has the shape durable publishing gives it. (Reading one transaction of 100 000
 * rows is much slower: see docs/benchmark.md.)
 */
export const PER_STATEMENT = 1_000;

/** Journal rows `$2 … $3` on channel `$1`: the payloads of (a)'s bulk statement. */
const BACKLOG_SQL = (q: string) =>
  `INSERT INTO ${q}.journal (channel, payload) SELECT $1, json_build_object('id', i, 'name', 'user_' || i, 'email', 'user' || i || '@example.com', 'tags', json_build_array('a','b','c'), 'active', true)::text FROM generate_series($2::int, $3::int) i`;

/**
 * Writes messages 1 … `total` on `channel` into the journal of schema `q` (quoted), in
 * statements of PER_STATEMENT rows: the backlog of (j) and of bench (g)'s durable rows.
 */
export async function writeBacklog(
  admin: pg.Client,
  q: string,
  channel: string,
  total: number,
): Promise<void> {
  for (let from = 1; from <= total; from += PER_STATEMENT) {
    const to = Math.min(total, from + PER_STATEMENT - 1);
    await admin.query(BACKLOG_SQL(q), [channel, from, to]);
  }
}

interface ChildMessage {
  type: 'ready' | 'plain' | 'result' | 'error';
  error?: string;
  plainPerSec?: number;
  durablePerSec?: number;
  firstMs?: number;
  received?: number;
  checksumOk?: boolean;
  rssBefore?: number;
  bareReadPerSec?: number;
  rssAfter?: number;
  peakRss?: number;
  heapBefore?: number;
  heapAfter?: number;
  errors?: number;
}

export async function durableCatchup(ctx: Context): Promise<WorkloadResult> {
  const total = ctx.quick ? 20_000 : 1_000_000;
  const plainTotal = ctx.quick ? 5_000 : 100_000;
  const schema = `bench_dcatch_${RUN_ID}`;
  const q = quoteIdent(schema);
  const admin = await connectedClient(ctx.url, runAppName('dcatch-admin'));
  const rows: string[][] = [];
  try {
    await installSchema({ client: admin, schema });
    const { samples, medians } = await runRounds(ctx, {
      rounds: 1,
      turns: () => ['pgnotify'],
      async measure(row, report) {
        const channel = benchChannel('dcatch');
        const plainChannel = benchChannel('dcatch_plain');
        const began = performance.now();
        await writeBacklog(admin, q, channel, total);
        const writeSec = (performance.now() - began) / 1000;
        const { rows: size } = await admin.query<{ bytes: number }>(
          `SELECT (pg_total_relation_size('${q}.journal') + pg_total_relation_size('${q}.commits'))::float8 AS bytes`,
        );
        const bytesPerMsg = (size[0]?.bytes ?? Number.NaN) / total;
        ctx.progress(
          `durable-catchup: backlog of ${fmt(total)} written in ${writeSec.toFixed(1)} s, ${fmt(bytesPerMsg)} journal bytes/message`,
        );
        const args = [
          ...[schema, channel, String(total), plainChannel, String(plainTotal)],
          runAppName('dcatch-consumer'),
        ];
        const child = fork(path.join(HERE, 'durable-catchup-child.ts'), args, {
          execArgv: ['--import', 'tsx', '--expose-gc'],
          env: { ...process.env, DATABASE_URL: ctx.url },
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        });
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        try {
          await deadline(
            nextMessage<ChildMessage>(child, 'ready', 'catch-up child'),
            60_000,
            'catch-up child start',
          );
          const plain = nextMessage<ChildMessage>(child, 'plain', 'catch-up child');
          plain.catch(() => undefined);
          await ctx.sender.bulk(plainChannel, plainTotal);
          await deadline(plain, 120_000, 'catch-up child: plain notifications');
          const result = nextMessage<ChildMessage>(child, 'result', 'catch-up child');
          result.catch(() => undefined);
          child.send({ type: 'go' });
          const r = await deadline(result, 15 * 60_000, 'catch-up child: the backlog');
          if (r.received !== total || r.checksumOk !== true)
            throw new Error(`the consumer handled ${r.received} of ${total} (checksum wrong)`);
          const values = {
            durablePerSec: r.durablePerSec ?? Number.NaN,
            plainPerSec: r.plainPerSec ?? Number.NaN,
            ratio: (r.durablePerSec ?? Number.NaN) / (r.plainPerSec ?? Number.NaN),
            bareReadPerSec: r.bareReadPerSec ?? Number.NaN,
            vsBareRead: (r.durablePerSec ?? Number.NaN) / (r.bareReadPerSec ?? Number.NaN),
            rssGrowthMB: ((r.rssAfter ?? 0) - (r.rssBefore ?? 0)) / MB,
            peakRssGrowthMB: ((r.peakRss ?? 0) - (r.rssBefore ?? 0)) / MB,
            heapGrowthMB: ((r.heapAfter ?? 0) - (r.heapBefore ?? 0)) / MB,
            firstMs: r.firstMs ?? Number.NaN,
            bytesPerMsg,
            writePerSec: total / writeSec,
          };
          report(
            row,
            values,
            `durable-catchup: ${fmt(values.durablePerSec)} msgs/s durable vs ${fmt(values.plainPerSec)} plain, ${fmt(values.bareReadPerSec)} hand-written read, RSS +${fmt(values.rssGrowthMB, 1)} MB`,
          );
          rows.push(
            ...[
              ['pgnotify durable consumer, backlog', fmt(total), fmt(values.durablePerSec)],
              ['pgnotify plain subscription (reference)', fmt(plainTotal), fmt(values.plainPerSec)],
              ['hand-written keyset read (reference)', fmt(total), fmt(values.bareReadPerSec)],
            ].map(([label, n, rate]) => [
              label as string,
              n as string,
              rate as string,
              ...(label?.includes('durable')
                ? [
                    `${values.ratio.toFixed(2)}×`,
                    fmt(values.rssGrowthMB, 1),
                    fmt(values.peakRssGrowthMB, 1),
                    fmt(bytesPerMsg),
                  ]
                : label?.includes('plain')
                  ? ['1.00×', '', '', '']
                  : [`${(values.bareReadPerSec / values.plainPerSec).toFixed(2)}×`, '', '', '']),
            ]),
          );
        } finally {
          if (child.connected) child.disconnect();
          const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
          await exited;
          clearTimeout(timer);
        }
      },
    });
    const m = medians.pgnotify ?? {};
    const title = `(j) durable catch-up: a backlog of ${fmt(total)} durable messages read by a named consumer`;
    return {
      key: 'durable-catchup',
      title,
      params: { total, plainTotal, perStatement: PER_STATEMENT },
      samples,
      medians,
      details: { durableVsPlain: m.ratio, durableVsBareRead: m.vsBareRead },
      text: table(
        title,
        [
          'consumer',
          'messages',
          'msgs/s',
          'vs plain',
          'RSS growth MB',
          'peak RSS growth MB',
          'journal B/msg',
        ],
        rows,
        [
          `backlog written first (${fmt(total / (m.writePerSec ?? Number.NaN), 1)} s, statements of ${fmt(PER_STATEMENT)} rows); the consumer in a fresh process:`,
          'plain: first to last receipt of one bulk statement; durable: subscribe() to the last handler call;',
          `RSS growth = after a full GC at the end − before subscribing (sampled every 20 ms for the peak); first message after ${fmt(m.firstMs, 0)} ms;`,
          `journal B/msg = pg_total_relation_size(journal + commits) / messages; targets: ≥ 0.5× plain, RSS growth < 100 MB;`,
          `hand-written keyset read: the same backlog after the consumer, pages of 1,000 in journal order on a client of its own,`,
          `each payload JSON-parsed (no buffer, cursor writes, gaps or byte budget); durable ÷ it: ${(m.vsBareRead ?? Number.NaN).toFixed(2)}×`,
        ],
      ),
    };
  } finally {
    await admin.query(`DROP SCHEMA IF EXISTS ${q} CASCADE`).catch(() => undefined);
    await admin.end().catch(() => undefined);
  }
}
