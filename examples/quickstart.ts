// The README's quick start, as a program: `node --import tsx examples/quickstart.ts` in a clone
// (DATABASE_URL or the PG* variables name the server). It stops after its own order arrives.
import { createListener, createNotifier } from 'pgnotify';

type Order = { id: number; total: number };
type Channels = { orders: Order }; // channel name → payload type

const listener = createListener<Channels>({
  connection: process.env.DATABASE_URL, // the default; without it, the PG* variables
  onError: (error) => console.error('pgnotify:', error.message), // handler and connection errors
});
listener.on('gap', (gap) => {
  if (gap.kind === 'gap')
    console.log(`lost ${gap.downtimeMs} ms on ${gap.channels.join(', ')}: resync from your tables`);
});

const shutdown = new AbortController();
process.once('SIGINT', () => shutdown.abort()); // Ctrl-C stops cleanly

await listener.subscribe('orders', (n) => {
  console.log('order', n.payload.id, 'total', n.payload.total, 'from backend', n.pid);
  if (n.payload.id === 1) shutdown.abort(); // a service would keep running instead
});
await listener.start(); // resolves once the server confirmed LISTEN

const notifier = createNotifier({ connection: process.env.DATABASE_URL });
await notifier.notify('orders', { id: 1, total: 9.5 }); // JSON-encoded, sent at once
await notifier.close();

await listener.run({ signal: shutdown.signal }); // resolves once stopped
console.log('quickstart done');
