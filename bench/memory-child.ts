/**
 * Workload (f), the receiving side, in a fresh process so its RSS says only what the
 * notifications cost:
 * `node --import tsx --expose-gc bench/memory-child.ts <mode> <channel> <total> [application_name]`.
 *
 *   pgnotify  a subscription without a handler that nobody reads (default buffer: 10 000)
 *   array     a hand-rolled pg listener pushing every parsed payload into an array (unbounded)
 *
 * Reports over IPC: `ready` (with the baseline after a full GC), then `result`.
 */
import pg from 'pg';
import { createListener } from '../src/index.js';
import { fullGc, send } from './child-ipc.js';

const [mode, channel, totalText, appName = 'pgnotify-bench-memory'] = process.argv.slice(2);
const total = Number(totalText);
const url = process.env.DATABASE_URL;

async function main(): Promise<void> {
  if (channel === undefined || !Number.isFinite(total))
    throw new Error('usage: <mode> <channel> <total>');
  let received: () => number;
  let info: () => Record<string, number>;
  let close: () => Promise<void>;
  if (mode === 'pgnotify') {
    let errors = 0;
    const listener = createListener({
      connection: url,
      applicationName: appName,
      // Overflow is expected here: count the reports instead of printing them.
      onError: () => {
        errors++;
      },
    });
    await listener.subscribe(channel);
    await listener.start();
    received = () => listener.stats().received;
    info = () => {
      const stats = listener.stats();
      const sub = stats.subscribers[0];
      return {
        kept: sub?.buffered ?? 0,
        dropped: sub?.dropped ?? 0,
        overflowReports: errors,
      };
    };
    close = () => listener.stop();
  } else if (mode === 'array') {
    const kept: unknown[] = [];
    const client = new pg.Client({
      connectionString: url,
      application_name: appName,
    });
    client.on('error', () => undefined);
    await client.connect();
    client.on('notification', (m) => kept.push(JSON.parse(m.payload as string)));
    await client.query(`LISTEN "${channel}"`);
    received = () => kept.length;
    info = () => ({ kept: kept.length, dropped: 0 });
    close = async () => {
      kept.length = 0;
      await client.end();
    };
  } else {
    throw new Error(`unknown mode ${mode}`);
  }

  fullGc();
  const before = process.memoryUsage();
  send({ type: 'ready' });
  let peakRss = before.rss;
  const giveUp = Date.now() + 10 * 60_000;
  while (received() < total) {
    if (Date.now() > giveUp)
      throw new Error(`only ${received()} of ${total} notifications arrived`);
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  // Let pending overflow reports (setImmediate) run, then measure what stays.
  await new Promise((resolve) => setImmediate(resolve));
  fullGc();
  const after = process.memoryUsage();
  peakRss = Math.max(peakRss, after.rss);
  send({
    type: 'result',
    received: received(),
    rssBefore: before.rss,
    rssAfter: after.rss,
    heapBefore: before.heapUsed,
    heapAfter: after.heapUsed,
    peakRss,
    ...info(),
  });
  await close();
}

main().then(
  () => process.disconnect?.(),
  (error: unknown) => {
    send({ type: 'error', error: error instanceof Error ? error.message : String(error) });
    process.exitCode = 1;
    process.disconnect?.();
  },
);
