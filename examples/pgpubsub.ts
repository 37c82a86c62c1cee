// pgpubsub's README with pgnotify: notify/listen/unlisten, iterating events with idle ticks,
// the non-blocking get_event(), and the echo loop guarded by the sender's pid.
// Run: DATABASE_URL=postgres://… node --import tsx examples/pgpubsub.ts
import pg from 'pg';
import { createListener, createNotifier, notify, type Subscription } from 'pgnotify';

const url = process.env.DATABASE_URL;
if (!url) throw new Error('set DATABASE_URL=postgres://user:password@host:port/database');
const run = `_${process.pid}`; // channel suffix, so two runs on one server do not hear each other
const [test, chan2, echo] = [`test${run}`, `chan2${run}`, `echo${run}`] as const;

// pubsub = pgpubsub.connect(...): a listener connection to receive, a notifier pool to send.
const listener = createListener({ connection: url, onError: (e) => console.error(e.message) });
const notifier = createNotifier({ connection: url });
await listener.start();

// pubsub.listen('test'); pubsub.listen('chan2'): one subscription, no handler, many channels.
const feed = await listener.subscribe([test, chan2]);

// pubsub.get_event(): never blocks; undefined (None) when nothing was delivered yet.
console.log(`get_event: ${feed.poll()}`);
await notifier.notify(test, 'message 1'); // pubsub.notify('test', 'message 1')
await notifier.notify(test, 'message 2');
await listener.drain(); // one round trip: both are read and buffered now
for (let e = feed.poll(); e !== undefined; e = feed.poll())
  console.log(`get_event: Notify(${e.pid}, '${e.channel}', '${e.raw}')`);
console.log(`get_event: ${feed.poll()} (no more messages)`);

// pubsub.events(select_timeout, yield_timeouts=True): undefined (None) for each idle period.
async function* events<T>(sub: Subscription<T>, selectTimeoutMs: number) {
  for (;;) yield await sub.next({ timeoutMs: selectTimeoutMs });
}
let ticks = 0;
for await (const e of events(feed, 100)) {
  if (e === undefined) {
    console.log('keepalive'); // send_websocket_ping()
    if (++ticks === 2) notifier.notify(chan2, 'after two ticks').catch(console.error);
    continue;
  }
  console.log(`event: ${e.channel} '${e.payload}'`); // send_websocket_message(e.payload)
  break; // leaves our generator; the feed stays subscribed
}

// pubsub.unlisten('chan2'): the subscriber stays on 'test' only.
await listener.unsubscribe(feed.id, chan2);
await notifier.notify(chan2, 'unheard');
await notifier.notify(test, 'heard');
await listener.drain();
console.log(`after unlisten: '${feed.poll()?.raw}', then ${feed.poll()}`);

// The echo loop: my_pid = pubsub.conn.get_backend_pid(); reply unless e.pid == my_pid.
// (ignoreOwn: true skips the listener's own backend; we send from another one, so compare pids.)
const conn = new pg.Client({ connectionString: url });
await conn.connect();
const myPid = (await conn.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid;
const echoes = await listener.subscribe(echo);
for (const word of ['ping 1', 'ping 2', 'ping 3']) await notifier.notify(echo, word); // a peer
let skipped = 0;
for await (const e of echoes) {
  if (e.pid === myPid) {
    console.log(`echo: skipped my own '${e.raw}'`);
    if (++skipped === 3) break; // leaving the loop unsubscribes
    continue;
  }
  console.log(`echo: '${e.raw}' from pid ${e.pid}, echoing it`);
  await notify(conn, echo, `echo of ${e.raw}`); // pubsub.notify('echo', e.payload)
}

await conn.end();
await notifier.close();
await listener.stop();
console.log(`pgpubsub example done, feed ended: ${feed.ended}`);
