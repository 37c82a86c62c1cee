// pgnotifier's README example with pgnotify: many channels on one listener, subscribers with ids,
// mute/unmute, subscribers added and removed while running, payloads as native values.
// Run: DATABASE_URL=postgres://… node --import tsx examples/pgnotifier.ts
import { createListener, createNotifier, type Notification } from 'pgnotify';

const url = process.env.DATABASE_URL;
if (!url) throw new Error('set DATABASE_URL=postgres://user:password@host:port/database');
const run = `_${process.pid}`; // channel suffix, so two runs on one server do not hear each other
const [ch1, ch2, ch3] = [`ch1${run}`, `ch2${run}`, `ch3${run}`] as const;
const kind = (v: unknown) => (Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v);
const flag = (muted: boolean) => (muted ? ' (muted)' : '');

// n = Notifier(conf); add_channels is not needed: a channel exists while it has subscribers.
const listener = createListener({ connection: url, onError: (e) => console.error(e.message) });
const notifier = createNotifier({ connection: url });
await listener.start(); // Notifier.start(); later changes are LISTEN/UNLISTEN, never a restart

// n.subscribe(42, 'ch1', lambda id, channel, payload, pid: print(...)): the id is closed over.
await listener.subscribe(
  ch1,
  (n) =>
    console.log(
      `id: 42, ${n.channel}: ${kind(n.payload)} ${JSON.stringify(n.payload)} pid ${n.pid}`,
    ),
  { id: 42 },
);
// n.subscribe('an_id', 'ch2', lambda *_: print("I'm just going to ignore that."))
await listener.subscribe(ch2, () => console.log("id: an_id, I'm just going to ignore that."), {
  id: 'an_id',
});
// def do_complex_thing(id, channel, payload, pid): walks a dict, complains about anything else.
function doComplexThing(n: Notification) {
  if (kind(n.payload) !== 'object') {
    console.log(`id: 2:another_id, payload of type ${kind(n.payload)} is not what I expected!`);
    return;
  }
  for (const [k, v] of Object.entries(n.payload as object))
    console.log(`id: 2:another_id, doing something with key: ${k} -> val ${JSON.stringify(v)}`);
}
// n.subscribe((2, 'another_id'), 'ch2', do_complex_thing): tuple ids become composite strings.
await listener.subscribe(ch2, doComplexThing, { id: '2:another_id' });

// select pg_notify('ch1', '"WARNING: …"') and friends; decode 'auto' plays ast.literal_eval.
async function send(label: string) {
  console.log(`--- ${label}`);
  await notifier.notify(ch1, '"WARNING: Something really bad happened"');
  await notifier.notify(ch1, '{"topic": "abc", "data": "some data", "something": "else"}');
  await notifier.notify(ch2, '{"topic": "xyz", "notice": "update", "data": [2, "stuff"]}');
  await notifier.notify(ch2, '[1,2,3,4,5]');
  await notifier.notify(ch3, '[1,2,3,4,5]'); // nobody on ch3 at first: not even LISTENed
  await listener.drain(); // everything sent so far has been through its handlers
}
await send('all subscribed');

await listener.mute(ch1); // n.mute_channels('ch1'): UNLISTEN ch1
await listener.muteSubscriber('an_id', ch2); // n.mute_subscriber('an_id', 'ch2')
// n.channels() / n.subscribers(): frozen snapshots, here with mute flags set.
for (const c of listener.channels()) {
  const ids = c.subscribers.map((s) => `${s.id}${flag(s.muted)}`).join(', ');
  console.log(`channel ${c.name}${flag(c.muted)}: active=${c.active}, subscribers: ${ids}`);
}
for (const s of listener.subscribers())
  console.log(`subscriber ${s.id}: ${s.channels.map((c) => c.name + flag(c.muted)).join(', ')}`);
await send('ch1 muted, an_id muted on ch2');

await listener.unmute(); // n.unmute_channels(): none named = all of them
await listener.unmuteSubscriber('an_id'); // n.unmute_subscriber('an_id')
await listener.unsubscribe('2:another_id', ch2); // n.unsubscribe((2, 'another_id'), 'ch2')
// A new subscriber while running: one LISTEN on the live connection, no thread restart.
await listener.subscribe(ch3, (n) => console.log(`id: late, ${n.channel}: ${kind(n.payload)}`), {
  id: 'late',
});
await send('unmuted, 2:another_id removed, late added on ch3');

await notifier.close();
await listener.stop(); // n.stop()
console.log('pgnotifier example done');
