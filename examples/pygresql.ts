// PyGreSQL's NotificationHandler with pgnotify: a callback with its arg_dict, the timeout
// callback, timeout=0 polling, and the 'stop_' + event stop notification.
// Run: DATABASE_URL=postgres://… node --import tsx examples/pygresql.ts
import { createListener, createNotifier, type Notification } from 'pgnotify';

const url = process.env.DATABASE_URL;
if (!url) throw new Error('set DATABASE_URL=postgres://user:password@host:port/database');
const event = `event_${process.pid}`; // unique, so two runs on one server do not mix
const notifier = createNotifier({ connection: url });

// arg_dict: PyGreSQL fills in pid, event and extra and hands the dict to the callback;
// None means "timed out". Here the dict is a closure and the notification fills it in.
type ArgDict = { greeting: string; received: number; pid?: number; event?: string; extra?: string };
function callback(arg: ArgDict | null) {
  if (arg === null) console.log('callback: timeout (None), nothing arrived');
  else
    console.log(
      `callback: ${arg.greeting} #${arg.received} ${arg.event} '${arg.extra}' pid ${arg.pid}`,
    );
}

// NotificationHandler(db, event, callback, arg_dict, timeout=0.2, stop_event='stop_' + event)
// The stop event stops the listener here (handler() returns); a subscription can take
// stopChannel too, to end only that subscriber.
const listener = createListener({
  connection: url,
  stopChannel: `stop_${event}`,
  onError: (e) => console.error(e.message),
});
const argDict: ArgDict = { greeting: 'hello', received: 0 };
let firstTimeout: () => void = () => {};
const timedOut = new Promise<void>((resolve) => {
  firstTimeout = resolve;
});
// The callback with its per-subscription context, called as PyGreSQL calls it.
const onEvent = (n: Notification) => {
  argDict.received++;
  callback({ ...argDict, pid: n.pid, event: n.channel, extra: n.raw });
};
await listener.subscribe(event, onEvent, {
  idleTimeoutMs: 200, // timeout=0.2
  onIdle: () => {
    callback(null);
    firstTimeout();
  },
});

// Meanwhile, another part of the program talks to the handler.
const script = (async () => {
  await listener.start(); // idempotent: resolves once run() below has LISTEN confirmed
  await timedOut; // the timeout callback ran once
  await notifier.notify(event, 'first'); // handler.notify(payload='first')
  await notifier.notify(event, 'second');
  await listener.drain(); // timeout=0: take whatever has arrived, run the callbacks, return
  console.log(`drained: ${argDict.received} received`);
  await notifier.notifyStop(`stop_${event}`); // handler.notify(stop=True)
})().catch((error: unknown) => {
  console.error(error);
  return listener.stop();
});
// handler(): listen and loop until the stop event; listener.run() is that loop.
await listener.run();
await script;
console.log(`handler returned: listener ${listener.state}, ${argDict.received} received`);
await notifier.close();
console.log('pygresql example done');
