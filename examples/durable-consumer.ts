// Durable channels, the consuming side, as a program: `node --import tsx
// examples/durable-consumer.ts` (DATABASE_URL names the server). docs/durable.md is cut from it.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createListener, installSchema, type Notification, notify } from 'pgnotify';

const url = process.env.DATABASE_URL ?? 'postgres://localhost/postgres';
// A fresh channel and consumer name per run, so the program prints the same every time.
const run = randomBytes(3).toString('hex');
const channel = `invoices_${run}`;

// Once per database (idempotent: safe at every start). CLI: pgnotify setup [--print]
await installSchema({ connection: url });

// A durable message is a journal row written in the sender's transaction plus a wake-up.
const pool = new pg.Pool({ connectionString: url });
async function publish(payloads: string[]): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    for (const payload of payloads) await notify(client, channel, payload, { durable: true });
    await client.query('COMMIT'); // visible to consumers now, never on ROLLBACK
  } finally {
    client.release();
  }
}

const listener = createListener({
  connection: url,
  onError: (error) => console.error('pgnotify:', error.message),
});
await listener.start();

// A named consumer: its cursor lives in pgnotify.consumers. On first start it begins at
// `startAt` ('now' by default); later it resumes after the last acknowledged message.
const billed: Notification[] = [];
let allBilled!: () => void;
const billing = new Promise<void>((resolve) => {
  allBilled = resolve;
});
const consumer = `billing_${run}`;
const sub = await listener.subscribe(
  channel,
  async (n) => {
    // Acknowledged (the stored cursor may move past n) once this settles without throwing.
    // A throw is retried with backoff, and nothing after n is handled meanwhile.
    billed.push(n);
    if (billed.length === 3) allBilled();
  },
  { durable: { consumer } },
);
await publish(['{"id":1}', '{"id":2}', '{"id":3}']);
await billing;
console.log('billed', billed.map((n) => (n.payload as { id: number }).id).join(' '));
await sub.unsubscribe(); // stores the cursor before it resolves its work

// Keeping the cursor yourself: every durable notification carries n.cursor.
const saved = billed[0]?.cursor as string;
const replay = await listener.subscribe(channel, { durable: { after: saved } });
for await (const n of replay) {
  console.log('replayed', n.payload);
  if ((n.payload as { id: number }).id === 3) break; // ends the subscription
}

// Gaps: a cursor older than retention gets a gap of kind 'expired' in its place.
const audit = await listener.subscribe(channel, { durable: { after: 'start' } });
for await (const item of audit.withGaps()) {
  if (item.kind === 'expired') console.log(`lost ${item.count ?? 'some'} on ${item.channel}`);
  else if (item.kind === 'gap') console.log('outage (plain channels only)');
  else if ((item.payload as { id: number }).id === 3) break;
}

// Behind PgBouncer in transaction mode (LISTEN never delivers there): poll the journal.
const polled = await listener.subscribe(channel, {
  durable: { after: saved, mode: 'poll', pollIntervalMs: 200 },
});
const next = await polled.next({ timeoutMs: 5000 });
console.log('polled', next?.payload);

await listener.stop(); // flushes every named consumer's cursor before it resolves
await pool.end();
console.log('durable done');
