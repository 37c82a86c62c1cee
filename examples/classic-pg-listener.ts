// classic-pg-listener's README with pgnotify: a connection factory, add_callback's future,
// background mode (start/stop/join), blocking mode (run), max_workers and ping_period.
// Run: DATABASE_URL=postgres://… node --import tsx examples/classic-pg-listener.ts
import pg from 'pg';
import { createListener, createNotifier, type Notification } from 'pgnotify';

const url = process.env.DATABASE_URL;
if (!url) throw new Error('set DATABASE_URL=postgres://user:password@host:port/database');
const channel = `some_channel_${process.pid}`; // unique, so two runs on one server do not mix
const notifier = createNotifier({ connection: url });
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// Listener(lambda: connect(..., autocommit=True), max_workers=4, ping_period=60)
function makeListener(maxWorkers: number) {
  return createListener({
    connection: () => new pg.Client({ connectionString: url }), // called again on every reconnect
    concurrency: maxWorkers, // handler calls in flight; 0 runs them inline, like max_workers=0
    heartbeat: { intervalMs: 60_000, timeoutMs: 5_000 }, // ping_period=60 (false = ping_period=0)
    onError: (e) => console.error(e.message),
  });
}

// --- background mode: start(), the main flow stays free, stop(), join()
const background = makeListener(4);
await background.start(); // listener.start()
let inFlight = 0;
let maxInFlight = 0;
async function someTask(n: Notification) {
  maxInFlight = Math.max(maxInFlight, ++inFlight);
  await pause(20); // slow work: up to 4 of these run at once
  inFlight--;
  console.log(`background: ${n.channel} ${n.payload}`);
}
// listener.add_callback(some_task, 'some_channel') → a future: awaiting it means LISTEN is live.
const callback = await background.subscribe(channel, someTask);
console.log('Main flow is still free!');
await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map((i) => notifier.notify(channel, `task ${i}`)));
await background.drain(); // all eight have run
console.log(`background: max in flight ${maxInFlight} (max_workers=4)`);
await callback.unsubscribe(); // listener.remove_callback(some_task, 'some_channel')
void background.stop(); // listener.stop(): asks to stop...
await background.closed; // listener.join(): ...and waits until it has
console.log(`background: joined, state ${background.state}`);

// --- blocking mode: run() returns only once the listener is stopped (here by a signal)
const blocking = makeListener(0); // max_workers=0: callbacks inline, like run() on one thread
const done = new AbortController();
let seen = 0;
await blocking.subscribe(channel, (n) => {
  console.log(`blocking: ${n.channel} ${n.payload}`);
  if (++seen === 3) done.abort(); // any code can end the blocking run
});
// A producer: start() is idempotent, so it resolves once run() below has LISTEN confirmed.
const producing = blocking
  .start()
  .then(() => Promise.all([1, 2, 3].map((i) => notifier.notify(channel, `job ${i}`))));
await blocking.run({ signal: done.signal }); // listener.run(): returns once stopped
await producing;
console.log(`blocking: run returned after ${seen} notifications, state ${blocking.state}`);

await notifier.close();
console.log('classic-pg-listener example done');
