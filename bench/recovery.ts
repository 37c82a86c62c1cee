/**
 * Workload (e): time from pg_terminate_backend(listener backend) to notifications delivered
 * again, with 1 and 10 000 channels, for the libraries that recover (pg-listen, postgres.js,
 * pgnotify), and whether the library told the application that notifications were lost.
 */
import type pg from 'pg';
import {
  benchAppName,
  benchChannel,
  type Context,
  connectedClient,
  deadline,
  rotate,
  runAppName,
  runRounds,
  sleep,
  type WorkloadResult,
} from './common.js';
import { type ListenerEvent, type ListenerName, STARTERS } from './contestants.js';
import { best, fmt, ratio, table } from './report.js';

export const RECOVERY_CONTESTANTS: readonly ListenerName[] = [
  'pg-listen',
  'postgres.js',
  'pgnotify',
];

/** The backend of the one session named `appName` (waits until it shows up). */
async function backendPid(admin: pg.Client, appName: string): Promise<number> {
  const until = Date.now() + 10_000;
  for (;;) {
    const { rows } = await admin.query<{ pid: number; query: string }>(
      "SELECT pid, query FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'client backend' ORDER BY (query ILIKE 'LISTEN%') DESC, pid",
      [appName],
    );
    if (rows.length === 1) return (rows[0] as { pid: number }).pid;
    if (rows.length > 1) {
      // More than one session: the listener is the one whose last statement was a LISTEN.
      const listening = rows.filter((r) => /^\s*listen/i.test(r.query));
      if (listening.length === 1) return (listening[0] as { pid: number }).pid;
      throw new Error(`${rows.length} sessions named ${appName}: cannot tell the listener`);
    }
    if (Date.now() > until) throw new Error(`no session named ${appName}`);
    await sleep(10);
  }
}

interface RecoveryOutcome {
  firstDeliveryMs: number;
  relistenedMs: number;
  lossReported: string[];
  otherEvents: string[];
}

async function recoveryOnce(
  ctx: Context,
  admin: pg.Client,
  name: ListenerName,
  channelCount: number,
): Promise<RecoveryOutcome> {
  const prefix = `${benchChannel('rec')}_`;
  const channels = Array.from({ length: channelCount }, (_, k) => `${prefix}${k}`);
  const appName = benchAppName(`rec-${name}`);
  let armedAt: bigint | undefined;
  let deliveredAt: bigint | undefined;
  let relistenedAt: bigint | undefined;
  let onDelivered: (() => void) | undefined;
  let onRelistened: (() => void) | undefined;
  const delivered = new Promise<void>((resolve) => {
    onDelivered = resolve;
  });
  const relistened = new Promise<void>((resolve) => {
    onRelistened = resolve;
  });
  const lossReported: string[] = [];
  const otherEvents: string[] = [];
  const onPayload = (): void => {
    if (armedAt === undefined || deliveredAt !== undefined) return;
    deliveredAt = process.hrtime.bigint();
    onDelivered?.();
  };
  const onEvent = (event: ListenerEvent): void => {
    if (armedAt === undefined) return;
    if (event.kind === 'relistened') {
      relistenedAt ??= process.hrtime.bigint();
      onRelistened?.();
    } else if (event.kind === 'loss-reported') lossReported.push(event.detail);
    else otherEvents.push(event.detail);
  };
  const running = await STARTERS[name]({
    url: ctx.url,
    appName,
    subscribers: channels.map((c) => [c]),
    onPayload,
    onEvent,
  });
  try {
    const pid = await backendPid(admin, appName);
    armedAt = process.hrtime.bigint();
    // Not the waiting form pg_terminate_backend(pid, timeout): it polls in 100 ms steps, which
    // would put a 100 ms floor under every figure. Nothing sent below can reach the old
    // connection anyway: SIGTERM is delivered before any of our notifications exist, and an
    // idle backend handles a pending termination before pending notifications.
    await admin.query('SELECT pg_terminate_backend($1::int)', [pid]);
    let arrived = false;
    void delivered.then(() => {
      arrived = true;
    });
    const giveUp = Date.now() + 30_000;
    while (!arrived && Date.now() < giveUp) {
      const channel = channels[Math.floor(Math.random() * channels.length)] as string;
      await admin.query('SELECT pg_notify($1, $2)', [channel, '{"id":0}']);
      await sleep(1);
    }
    if (!arrived) throw new Error(`${name}: no notification within 30 s of the kill`);
    await deadline(relistened, 30_000, `${name}: library-reported re-listen`).catch(
      () => undefined,
    );
    // Give late loss reports (emitted right after re-listening) a moment to arrive.
    await sleep(20);
    const ms = (at: bigint | undefined): number =>
      at === undefined ? Number.NaN : Number(at - (armedAt as bigint)) / 1e6;
    return {
      firstDeliveryMs: ms(deliveredAt),
      relistenedMs: ms(relistenedAt),
      lossReported,
      otherEvents,
    };
  } finally {
    await running.close().catch(() => undefined);
  }
}

export async function recovery(ctx: Context): Promise<WorkloadResult> {
  const channelCounts = ctx.quick ? [1, 100] : [1, 10_000];
  const contestants = ctx.pick(RECOVERY_CONTESTANTS);
  const reports: Record<string, { lossReported: Set<string>; otherEvents: Set<string> }> = {};
  const admin = await connectedClient(ctx.url, runAppName('admin'));
  const { samples, medians } = await runRounds(ctx, {
    turns: (round) =>
      channelCounts.flatMap((channelCount) =>
        rotate(contestants, round).map((name) => ({ channelCount, name })),
      ),
    async measure({ channelCount, name }, report, label) {
      const row = `${fmt(channelCount)} / ${name}`;
      const outcome = await recoveryOnce(ctx, admin, name, channelCount);
      const seen = reports[row] ?? { lossReported: new Set(), otherEvents: new Set() };
      reports[row] = seen;
      for (const detail of outcome.lossReported) seen.lossReported.add(detail);
      for (const detail of outcome.otherEvents) seen.otherEvents.add(detail.replace(/#\d+/, '#n'));
      report(
        row,
        { firstDeliveryMs: outcome.firstDeliveryMs, relistenedMs: outcome.relistenedMs },
        `recovery ${label} ${channelCount} channel(s) ${name}: first delivery ${fmt(outcome.firstDeliveryMs, 1)} ms, re-listened ${fmt(outcome.relistenedMs, 1)} ms`,
      );
    },
  }).finally(() => admin.end().catch(() => undefined));
  const rows: string[][] = [];
  for (const channelCount of channelCounts) {
    const at = (name: string, metric: string): number | undefined =>
      medians[`${fmt(channelCount)} / ${name}`]?.[metric];
    const peers = contestants.filter((n) => n !== 'pgnotify');
    const peerFirst = best(
      peers.map((p) => at(p, 'firstDeliveryMs')),
      'lower',
    );
    const peerRelisten = best(
      peers.map((p) => at(p, 'relistenedMs')),
      'lower',
    );
    for (const name of contestants) {
      const report = reports[`${fmt(channelCount)} / ${name}`];
      const loss = report === undefined ? [] : [...report.lossReported];
      rows.push([
        fmt(channelCount),
        name,
        fmt(at(name, 'firstDeliveryMs'), 1),
        ratio(at(name, 'firstDeliveryMs'), peerFirst),
        fmt(at(name, 'relistenedMs'), 1),
        ratio(at(name, 'relistenedMs'), peerRelisten),
        loss.length === 0 ? 'no' : `yes: ${loss.join(', ')}`,
      ]);
    }
  }
  const details: Record<string, unknown> = {};
  for (const [row, report] of Object.entries(reports)) {
    details[row] = {
      lossReported: [...report.lossReported],
      otherEvents: [...report.otherEvents],
    };
  }
  const title = `(e) recovery: pg_terminate_backend(listener) → notifications delivered again, ${ctx.rounds} round(s)`;
  return {
    key: 'recovery',
    title,
    params: { channelCounts, rounds: ctx.rounds },
    samples,
    medians,
    details,
    text: table(
      title,
      [
        'channels',
        'contestant',
        'first delivery ms',
        '×best peer',
        'all re-listened ms',
        '×best peer',
        'loss reported to the app',
      ],
      rows,
      [
        'medians (lower is better), from just before pg_terminate_backend(pid) on the listener backend',
        '(found in pg_stat_activity by application_name); a random channel is notified every ~1 ms until one arrives;',
        'all re-listened = the library says so: pgnotify "reconnected", pg-listen "connected", postgres.js onlisten for',
        'every channel. First delivery can come before all are re-listened when a library LISTENs channel by channel.',
        'PostgreSQL itself needs time quadratic in the channel count to LISTEN many channels in one session.',
        'The hand-rolled pg listener has no recovery and is not run.',
      ],
      2,
    ),
  };
}
