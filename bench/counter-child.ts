/**
 * The receiving end of the publish workload, run as a child process (see publish.ts): a bare
 * pg client that LISTENs on one channel and counts. Out of the publisher's process, as in an
 * application, so the publisher's CPU and event loop are its own; the same for every publisher.
 *
 * argv: application_name, channel. Request `{ n }`: resolves with the `process.hrtime` (as a
 * decimal string; CLOCK_MONOTONIC, comparable across processes) of the n-th arrival.
 */
import pg from 'pg';
import { serve } from './rpc.js';

const [applicationName, channel = ''] = process.argv.slice(2);
const client = new pg.Client({
  connectionString: process.env.DATABASE_URL,
  application_name: applicationName,
});
client.on('error', () => undefined);

let count = 0;
let waiter: { n: number; resolve(at: bigint): void } | undefined;
client.on('notification', () => {
  count++;
  if (waiter !== undefined && count >= waiter.n) {
    waiter.resolve(process.hrtime.bigint());
    waiter = undefined;
  }
});

await serve<{ n: number }>(
  async () => {
    await client.connect();
    await client.query(`LISTEN "${channel.replaceAll('"', '""')}"`);
  },
  async ({ n }) => {
    // Already there (the warm-up): now is the time to report.
    const at =
      count >= n
        ? process.hrtime.bigint()
        : await new Promise<bigint>((resolve) => {
            waiter = { n, resolve };
          });
    return String(at);
  },
  () => client.end(),
);
