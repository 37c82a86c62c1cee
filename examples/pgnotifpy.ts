// pgnotifpy's README with pgnotify: action routing à la Flask on channel 'job', a custom
// dispatcher, an ill-formed message, and the decorator form on a class.
// Run: DATABASE_URL=postgres://… node --import tsx examples/pgnotifpy.ts
import { createListener, createNotifier, handles } from 'pgnotify';

type User = { id: number; name: string };
const url = process.env.DATABASE_URL;
if (!url) throw new Error('set DATABASE_URL=postgres://user:password@host:port/database');
const run = `_${process.pid}`; // channel suffix, so two runs on one server do not hear each other
const [job, accounts] = [`job${run}`, `accounts${run}`] as const;

// li = pgnotifpy.Listener('dbname', 'user')
const listener = createListener({ connection: url, onError: (e) => console.error(e.message) });
const notifier = createNotifier({ connection: url });

// def my_dispatch(payload): json.loads, data['action'], data.get('data'); None when ill-formed.
// The payload arrives decoded already (decode 'auto'); text that is not JSON stays a string.
function myDispatch(payload: unknown): [string, unknown] | undefined {
  if (typeof payload !== 'object' || payload === null) return undefined;
  const { action, data } = payload as { action?: unknown; data?: unknown };
  return typeof action === 'string' ? [action, data] : undefined; // KeyError → undefined
}

// li.run('job', my_dispatch) wires the channel; handlers can be added before or after.
const jobs = listener.route(job, {
  dispatch: myDispatch,
  onUnrouted: (reason, n) =>
    console.log(
      reason === 'rejected' ? `Ill-formed JSON message :( ${n.raw}` : `no handler: ${n.raw}`,
    ),
});
// @li.listen('new_user') def say_hello(data) / @li.listen('delete_user') def say_bye(data)
jobs
  .on<User>('new_user', (data) => console.log('hi', data.name))
  .on<User>('delete_user', (data) => console.log('bye', data.name));

// The decorator form: @handles on methods, then register(instance) binds them.
class Accounts {
  greeting = 'welcome';
  @handles('new_user')
  welcome(data: User) {
    console.log(`accounts: ${this.greeting} #${data.id}`);
  }
  @handles('new_user')
  @handles('delete_user')
  audit(data: User, n: { channel: string }) {
    console.log(`accounts: audit ${n.channel} #${data.id}`);
  }
}
const accountRoute = listener.route(accounts).register(new Accounts());

await listener.start();
await Promise.all([jobs.ready, accountRoute.ready]); // both channels are LISTENed

// NOTIFY job, '<DATA>': the README's message shape, an ill-formed one, and an unknown action.
await notifier.notify(job, { action: 'new_user', data: { id: 42, name: 'John Doe' } });
await notifier.notify(job, '{"action": "new_user", "data": {"id": 43, "name": oops');
await notifier.notify(job, { action: 'rename_user', data: { id: 42 } }); // no handler
await notifier.notify(job, { action: 'delete_user', data: { id: 42, name: 'John Doe' } });
await notifier.notify(accounts, { action: 'new_user', data: { id: 7, name: 'Ada' } });
await notifier.notify(accounts, { action: 'delete_user', data: { id: 7, name: 'Ada' } });
await listener.drain(); // every message has been routed

console.log(`actions on ${job}: ${jobs.actions().join(', ')}`);
console.log(`unrouted: ${listener.stats().unrouted}`);
await notifier.close();
await listener.stop();
console.log('pgnotifpy example done');
