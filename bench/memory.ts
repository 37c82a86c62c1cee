/**
 * Workload (f): RSS growth after many notifications into a subscription nobody reads. The
 * receiver runs in a fresh child process (memory-child.ts), so earlier workloads' heap does
 * not hide or inflate the growth; the bench's sender child sends.
 */
import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { nextMessage } from './child-ipc.js';
import {
  benchChannel,
  type Context,
  deadline,
  runAppName,
  runRounds,
  type WorkloadResult,
} from './common.js';
import { fmt, table } from './report.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MB = 1024 * 1024;

interface ChildMessage {
  type: 'ready' | 'result' | 'error';
  error?: string;
  received?: number;
  rssBefore?: number;
  rssAfter?: number;
  heapBefore?: number;
  heapAfter?: number;
  peakRss?: number;
  kept?: number;
  dropped?: number;
}

async function measure(
  ctx: Context,
  mode: 'pgnotify' | 'array',
  statements: number,
  perStatement: number,
): Promise<ChildMessage> {
  const channel = benchChannel('mem');
  const total = statements * perStatement;
  const args = [mode, channel, String(total), runAppName(`memory-${mode}`)];
  const child = fork(path.join(HERE, 'memory-child.ts'), args, {
    execArgv: ['--import', 'tsx', '--expose-gc'],
    env: { ...process.env, DATABASE_URL: ctx.url },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await deadline(
      nextMessage<ChildMessage>(child, 'ready', 'memory child'),
      30_000,
      `memory child (${mode}) start`,
    );
    const result = nextMessage<ChildMessage>(child, 'result', 'memory child');
    result.catch(() => undefined);
    for (let i = 0; i < statements; i++) await ctx.sender.bulk(channel, perStatement);
    return await deadline(result, 10 * 60_000, `memory child (${mode}) result`);
  } finally {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

export async function memory(ctx: Context): Promise<WorkloadResult> {
  const statements = 10;
  const perStatement = ctx.quick ? 5_000 : 100_000;
  const total = statements * perStatement;
  const all = [
    {
      key: 'pgnotify',
      contestant: 'pgnotify',
      label: 'pgnotify (unread subscription, default buffer)',
    },
    { key: 'array', contestant: 'pg', label: 'pg + unbounded array (contrast)' },
  ] as const;
  const chosen = ctx.pick(all.map((m) => m.contestant));
  const modes = all.filter((m) => chosen.includes(m.contestant));
  const rows: string[][] = [];
  // One round: each receiver once, in a fresh process of its own.
  const { samples, medians } = await runRounds(ctx, {
    rounds: 1,
    turns: () => modes,
    async measure(mode, report) {
      const r = await measure(ctx, mode.key, statements, perStatement);
      const values = {
        rssGrowthMB: ((r.rssAfter ?? 0) - (r.rssBefore ?? 0)) / MB,
        peakRssGrowthMB: ((r.peakRss ?? 0) - (r.rssBefore ?? 0)) / MB,
        heapGrowthMB: ((r.heapAfter ?? 0) - (r.heapBefore ?? 0)) / MB,
        kept: r.kept ?? 0,
        dropped: r.dropped ?? 0,
      };
      report(mode.key, values, `memory ${mode.key}: RSS +${fmt(values.rssGrowthMB, 1)} MB`);
      rows.push([
        mode.label,
        fmt(r.received),
        fmt(values.rssGrowthMB, 1),
        fmt(values.peakRssGrowthMB, 1),
        fmt(values.heapGrowthMB, 1),
        fmt(values.kept),
        fmt(values.dropped),
      ]);
    },
  });
  const title = `(f) memory: ${fmt(total)} notifications (${statements} statements of ${fmt(perStatement)}) that nobody reads`;
  return {
    key: 'memory',
    title,
    params: { statements, perStatement, total },
    samples,
    medians,
    text: table(
      title,
      [
        'receiver',
        'received',
        'RSS growth MB',
        'peak RSS growth MB',
        'heap growth MB',
        'kept',
        'dropped',
      ],
      rows,
      [
        'each receiver in a fresh process; growth = after a full GC once all arrived − after a full GC before sending;',
        'peak = highest RSS sampled every 20 ms while receiving (lower is better)',
      ],
    ),
  };
}
