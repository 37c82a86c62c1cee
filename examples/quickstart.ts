// The README's quick start, runnable: `DATABASE_URL=postgres://… node --import tsx examples/quickstart.ts`.
// test/docs.test.ts checks that every TypeScript block in README.md is taken from a file here.
import pg from 'pg';
import { createListener, createNotifier, notify } from '../src/index.js';

type Order = { id: number; total: number };

// --- quick start ---
const listener = createListener<{ orders: Order; audit: string }>({
  connection: process.env.DATABASE_URL,
  onError: (error) => console.error('pgnotify:', error.message),
});
listener.on('gap', (gap) =>
  console.log(`lost ${gap.downtimeMs} ms on ${gap.channels.join(', ')}; resyncing`),
);

await listener.subscribe('orders', (n) =>
  console.log('order', n.payload.id, 'from backend', n.pid),
);
await listener.start(); // resolves once the server confirmed LISTEN

const notifier = createNotifier({ connection: process.env.DATABASE_URL });
await notifier.notify('orders', { id: 1, total: 9.5 }); // JSON-encoded, batched with concurrent calls
// --- end quick start ---

// --- iterate ---
const feed = await listener.subscribe('audit'); // no handler: an async iterable
await notifier.notify('audit', 'first');
for await (const n of feed) {
  console.log('audit', n.payload);
  break; // leaving the loop unsubscribes
}
// --- end iterate ---

const second = listener.once('orders', { timeoutMs: 5000, filter: (n) => n.payload.id === 2 });
// --- transactional ---
const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
await client.connect();
await client.query('BEGIN');
await notify(client, 'orders', { id: 2, total: 20 }); // delivered on COMMIT, never on ROLLBACK
await client.query('COMMIT');
await client.end();
// --- end transactional ---

await second;
await notifier.close();
await listener.stop();
console.log('quickstart done');
