// The samples of docs/api.md, as one program that runs and exits by itself:
// `node --import tsx examples/api.ts` in a clone (DATABASE_URL or the PG* variables name the server).
import pg from 'pg';
import { createListener, createNotifier, notify, PgNotifyError } from 'pgnotify';

type Order = { id: number; total: number };
type Job = { action: 'resize'; data: { url: string } } | { action: 'delete'; data: { id: number } };
type Channels = { orders: Order; audit: string; job: Job };

const listener = createListener<Channels>({ connection: process.env.DATABASE_URL });
const notifier = createNotifier({ connection: process.env.DATABASE_URL });
await listener.start();

// --- iterate ---
const feed = await listener.subscribe('audit'); // no handler: an async iterable
await notifier.notify('audit', 'first');
for await (const n of feed) {
  console.log('audit', n.payload);
  break; // leaving the loop unsubscribes
}
// --- end iterate ---

// --- poll and next ---
const inbox = await listener.subscribe(['orders', 'audit'], { id: 'inbox' });
console.log('poll:', inbox.poll()); // undefined: nothing buffered (poll never waits)
console.log('tick:', await inbox.next({ timeoutMs: 100 })); // undefined: 100 ms of nothing
await notifier.notify('orders', { id: 3, total: 12 });
const next = await inbox.next({ timeoutMs: 5000 });
console.log('next:', next?.channel, next?.payload);
// --- end poll and next ---

// --- snapshots ---
await listener.mute('audit'); // UNLISTEN audit until unmuted; notifications sent meanwhile are lost
for (const { name, muted, active, listening, subscribers } of listener.channels()) {
  const ids = subscribers.map((s) => s.id);
  console.log('channel', name, { muted, active, listening }, ids);
}
for (const { id, channels } of listener.subscribers()) {
  const names = channels.map((c) => (c.muted ? `${c.name} (muted)` : c.name));
  console.log('subscriber', id, names);
}
await listener.unmute('audit');
await inbox.unsubscribe();
// --- end snapshots ---

// --- once ---
const big = listener.once('orders', { timeoutMs: 5000, filter: (n) => n.payload.total > 100 });
await big.ready; // listening now: what is sent from here on is not missed
await notifier.notify('orders', { id: 4, total: 250 });
console.log('once:', (await big).payload.id);
// --- end once ---

// --- route ---
const jobs = listener.route('job'); // the default dispatcher reads { action, data }
jobs.on('resize', (data) => console.log('resize', data.url)); // data: { url: string }
jobs.on('delete', (data) => console.log('delete', data.id)); // data: { id: number }
await jobs.ready;
await notifier.notify('job', { action: 'resize', data: { url: 'cat.png' } });
await notifier.notify('job', { action: 'delete', data: { id: 7 } });
await listener.drain(); // everything sent before this call has been handled
await jobs.unsubscribe();
// --- end route ---

const second = listener.once('orders', { timeoutMs: 5000, filter: (n) => n.payload.id === 2 });
await second.ready;
// --- transactional ---
const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
await client.connect();
await client.query('BEGIN');
await notify(client, 'orders', { id: 2, total: 20 }); // delivered on COMMIT, never on ROLLBACK
await client.query('COMMIT');
await client.end();
// --- end transactional ---
console.log('committed:', (await second).payload.id);

// --- errors ---
try {
  await notifier.notify('x'.repeat(64), 'a channel name is at most 63 bytes');
} catch (error) {
  if (!(error instanceof PgNotifyError)) throw error;
  console.log('refused:', error.code); // match on the code, never on the message
}
// --- end errors ---

// --- stats ---
const { state, received, delivered, dropped, reconnects, channels } = listener.stats();
console.log('stats:', { state, received, delivered, dropped, reconnects, channels });
// --- end stats ---

await notifier.close();
await listener.stop();
console.log('api example done');
