/**
 * The durable act's consumer (see demo-durable.ts), run as a child process of the demo:
 * `demo-consumer <url> <schema> <channel> <consumer>`. A named durable consumer whose handler
 * "does its work" by reporting the message to the parent over IPC and returns once the report
 * is written: a message counts as handled only then, and is acknowledged only after.
 *
 * To the parent: `{ type: 'ready' }` once subscribed and connected, `{ type: 'handled', seq,
 * cursor }` per handler call, `{ type: 'failed', error }` if it cannot start. A disconnect
 * from the parent stops the listener (storing the cursor) and ends the process.
 */
import { createListener } from '../index.js';

interface Handled {
  type: 'handled';
  seq: number;
  cursor: string;
}

function send(message: unknown): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) return resolve();
    process.send?.(message, undefined, undefined, () => resolve());
  });
}

async function main(): Promise<void> {
  const [url, schema, channel, consumer] = process.argv.slice(2);
  if (url === undefined || schema === undefined || channel === undefined || consumer === undefined)
    throw new Error('usage: demo-consumer <url> <schema> <channel> <consumer>');
  const listener = createListener({
    connection: url,
    applicationName: 'pgnotify-demo-consumer',
    reconnect: { minDelayMs: 100, maxDelayMs: 500 },
    // Connection errors while the server restarts are expected: the listener reconnects.
    onError: () => undefined,
  });
  process.on('disconnect', () => {
    void listener.stop().finally(() => process.exit(0));
  });
  await listener.subscribe(
    channel,
    async (n) => {
      const { seq } = n.payload as { seq: number };
      const handled: Handled = { type: 'handled', seq, cursor: n.cursor ?? '' };
      await send(handled);
    },
    { durable: { consumer, startAt: 'start', schema } },
  );
  await listener.start();
  await send({ type: 'ready' });
}

main().catch(async (error: unknown) => {
  await send({ type: 'failed', error: error instanceof Error ? error.message : String(error) });
  process.exit(1);
});
