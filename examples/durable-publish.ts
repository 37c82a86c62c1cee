// The durable-publishing samples of docs/api.md, as one program that runs and exits by itself:
// `node --import tsx examples/durable-publish.ts` in a clone (DATABASE_URL or the PG* variables
// name the server). It installs a journal in a schema of its own and drops it at the end.
import pg from 'pg';
import { createNotifier, installSchema, notify, PgNotifyError, readJournal } from 'pgnotify';

type Order = { id: number; total: number };
type Channels = { orders: Order };

// A schema of this run's own, so the example never touches a real journal (yours: 'pgnotify').
const schema = `pgnotify_example_${process.pid}`;

// --- install ---
await installSchema({ connection: process.env.DATABASE_URL, schema }); // idempotent; CLI: pgnotify setup
// --- end install ---

// --- notifier ---
const notifier = createNotifier<Channels>({ connection: process.env.DATABASE_URL, schema });
await Promise.all([
  notifier.notify('orders', { id: 1, total: 10 }, { durable: true }), // a journal row each,
  notifier.notify('orders', { id: 1, total: 10 }, { durable: true }), // never folded
  notifier.notify('orders', { id: 2, total: 20 }), // plain NOTIFY, sent after the durable batch
]);
await notifier.notifyMany(
  'orders',
  [
    { id: 3, total: 30 },
    { id: 4, total: 40 },
  ],
  { durable: true },
);
// --- end notifier ---

// --- transaction ---
const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
await client.connect();
await client.query('BEGIN');
await client.query('SELECT 1'); // your writes, in the same transaction
await notify<Channels>(client, 'orders', { id: 5, total: 50 }, { durable: true, schema });
await client.query('COMMIT'); // the row is visible to durable subscriptions from now on
await client.query('BEGIN');
await notify<Channels>(client, 'orders', { id: 6, total: 60 }, { durable: true, schema });
await client.query('ROLLBACK'); // never visible to anyone
// --- end transaction ---

// --- read back ---
const page = await readJournal(client, { schema, after: 'start' });
for (const row of page.rows) console.log(row.cursor, row.channel, row.payload);
// --- end read back ---

// --- missing journal ---
try {
  await notify(client, 'orders', 'x', { durable: true, schema: `${schema}_missing` });
} catch (error) {
  if (!(error instanceof PgNotifyError)) throw error;
  console.log('refused:', error.code); // PGNOTIFY_SCHEMA_MISSING: run `pgnotify setup`
}
// --- end missing journal ---

await client.query(`DROP SCHEMA "${schema}" CASCADE`);
await client.end();
await notifier.close();
console.log('durable-publish example done');
