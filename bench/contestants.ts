/**
 * The contestants, behind one small interface each for listening and for publishing:
 * a hand-rolled `pg` listener, pg-listen, postgres.js and pgnotify. Every listener hands the
 * JSON-decoded payload to the same `onPayload` function, so what differs is the library.
 */
import pg from 'pg';
import pgListen from 'pg-listen';
import postgres from 'postgres';
import { createListener, createNotifier, type Notification } from '../src/index.js';

export const LISTENERS = ['pg', 'pg-listen', 'postgres.js', 'pgnotify'] as const;
export type ListenerName = (typeof LISTENERS)[number];

/** The baseline every ratio is taken against. */
export const BASELINE: ListenerName = 'pg';
/** The other libraries ("peers"): the best of them is the second reference. */
export const PEERS: readonly ListenerName[] = ['pg-listen', 'postgres.js'];

/** What a library reports about its connection, for the recovery workload. */
export type ListenerEvent =
  /** Every channel is listened to again after a lost connection (library-reported). */
  | { kind: 'relistened' }
  /** The library told the application that notifications may have been lost. */
  | { kind: 'loss-reported'; detail: string }
  /** Anything else it reported (reconnect attempts, errors). */
  | { kind: 'other'; detail: string };

export interface ListenSetup {
  url: string;
  /** application_name of the listener connection (to find its backend). */
  appName: string;
  /** One entry per subscriber: the channels it subscribes to. */
  subscribers: readonly (readonly string[])[];
  /** Called with the decoded payload once per subscriber a notification is delivered to. */
  onPayload: (payload: unknown) => void;
  onEvent?: (event: ListenerEvent) => void;
}

export interface RunningListener {
  close(): Promise<void>;
}

type Starter = (setup: ListenSetup) => Promise<RunningListener>;

function uniqueChannels(subscribers: readonly (readonly string[])[]): string[] {
  return [...new Set(subscribers.flat())];
}

function pairCount(subscribers: readonly (readonly string[])[]): number {
  return subscribers.reduce((n, channels) => n + channels.length, 0);
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * What a user writes without a library: one pg.Client, LISTEN, JSON.parse in the
 * 'notification' handler. With one channel and one subscriber it is exactly
 * `client.on('notification', m => handler(JSON.parse(m.payload)))`; with more it adds the
 * obvious Map channel → handlers, parsing once per notification.
 */
const startPg: Starter = async ({ url, appName, subscribers, onPayload }) => {
  const client = new pg.Client({ connectionString: url, application_name: appName });
  client.on('error', () => {
    // Terminated by the bench; nothing to recover.
  });
  await client.connect();
  const channels = uniqueChannels(subscribers);
  if (subscribers.length === 1 && channels.length === 1) {
    client.on('notification', (m) => onPayload(JSON.parse(m.payload as string)));
  } else {
    const handlers = new Map<string, ((payload: unknown) => void)[]>();
    for (const list of subscribers) {
      for (const channel of list) {
        const existing = handlers.get(channel);
        if (existing === undefined) handlers.set(channel, [onPayload]);
        else existing.push(onPayload);
      }
    }
    client.on('notification', (m) => {
      const list = handlers.get(m.channel);
      if (list === undefined) return;
      const payload = JSON.parse(m.payload as string);
      for (let i = 0; i < list.length; i++) (list[i] as (payload: unknown) => void)(payload);
    });
  }
  await client.query(channels.map((c) => `LISTEN ${quoteIdent(c)};`).join(''));
  return { close: () => client.end() };
};

// pg-listen is CommonJS with `exports.default`; tsx and plain Node interop disagree on
// whether the default import is the function or the module object.
type CreateSubscriber = (typeof pgListen)['default'];
const createSubscriber: CreateSubscriber =
  (pgListen as unknown as { default?: CreateSubscriber }).default ??
  (pgListen as unknown as CreateSubscriber);

/** pg-listen: `notifications.on(channel, handler)` per subscriber, `listenTo` per channel. */
const startPgListen: Starter = async ({ url, appName, subscribers, onPayload, onEvent }) => {
  const subscriber = createSubscriber({ connectionString: url, application_name: appName });
  subscriber.events.on('error', (error: Error) =>
    onEvent?.({ kind: 'other', detail: `error: ${error.message}` }),
  );
  await subscriber.connect();
  // Registered after the first connect: from now on 'connected' means re-listened.
  subscriber.events.on('connected', () => onEvent?.({ kind: 'relistened' }));
  subscriber.events.on('reconnect', (attempt: number) =>
    onEvent?.({ kind: 'other', detail: `reconnect #${attempt}` }),
  );
  for (const list of subscribers) {
    for (const channel of list) subscriber.notifications.on(channel, onPayload);
  }
  await Promise.all(uniqueChannels(subscribers).map((c) => subscriber.listenTo(c)));
  return { close: () => subscriber.close() };
};

/** postgres.js: `sql.listen(channel, fn)` per subscriber and channel; fn gets the raw text. */
const startPostgresJs: Starter = async ({ url, appName, subscribers, onPayload, onEvent }) => {
  const sql = postgres(url, {
    connection: { application_name: appName },
    onnotice: () => undefined,
  });
  const pairs = pairCount(subscribers);
  let listened = 0;
  // onlisten runs again for every channel when postgres.js re-listens after a lost connection.
  const onlisten = (): void => {
    listened++;
    if (listened > pairs && (listened - pairs) % pairs === 0) onEvent?.({ kind: 'relistened' });
  };
  const handler = (text: string): void => onPayload(JSON.parse(text));
  const requests: Promise<unknown>[] = [];
  for (const list of subscribers) {
    for (const channel of list) requests.push(sql.listen(channel, handler, onlisten));
  }
  await Promise.all(requests);
  return { close: () => sql.end({ timeout: 5 }) };
};

/** pgnotify: one subscription per subscriber with a synchronous handler, decode 'auto'. */
const startPgnotify: Starter = async ({ url, appName, subscribers, onPayload, onEvent }) => {
  const listener = createListener({
    connection: url,
    applicationName: appName,
    onError: (error) => onEvent?.({ kind: 'other', detail: `onError: ${message(error)}` }),
  });
  listener.on('reconnected', () => onEvent?.({ kind: 'relistened' }));
  listener.on('gap', (gap) =>
    onEvent?.({
      kind: 'loss-reported',
      detail: `gap on ${gap.kind === 'gap' ? gap.channels.length : 1} channel(s)`,
    }),
  );
  // Subscribed before start(): each resolves at once, and start() LISTENs them all.
  const handler = (n: Notification): void => onPayload(n.payload);
  await Promise.all(subscribers.map((channels) => listener.subscribe(channels, handler)));
  await listener.start();
  return { close: () => listener.stop() };
};

export const STARTERS: Record<ListenerName, Starter> = {
  pg: startPg,
  'pg-listen': startPgListen,
  'postgres.js': startPostgresJs,
  pgnotify: startPgnotify,
};

// ---- publishing -------------------------------------------------------------------------

export const PUBLISHERS = ['pg Pool', 'pg-listen', 'postgres.js', 'pgnotify'] as const;
export type PublisherName = (typeof PUBLISHERS)[number];
export const PUBLISH_BASELINE: PublisherName = 'pg Pool';
export const PUBLISH_PEERS: readonly PublisherName[] = ['pg-listen', 'postgres.js'];

export interface Publisher {
  notify(channel: string, payload: Record<string, unknown>): Promise<unknown>;
  close(): Promise<void>;
}

type PublisherStarter = (url: string, appName: string) => Promise<Publisher>;

export const PUBLISHER_STARTERS: Record<PublisherName, PublisherStarter> = {
  /** A pg Pool of 10, one `SELECT pg_notify($1, $2)` per call. */
  'pg Pool': async (url, appName) => {
    const pool = new pg.Pool({ connectionString: url, application_name: appName, max: 10 });
    pool.on('error', () => undefined);
    return {
      notify: (channel, payload) =>
        pool.query('SELECT pg_notify($1, $2)', [channel, JSON.stringify(payload)]),
      close: () => pool.end(),
    };
  },
  /** pg-listen's `notify()`: `NOTIFY channel, 'literal'` on its one connection. */
  'pg-listen': async (url, appName) => {
    const subscriber = createSubscriber(
      { connectionString: url, application_name: appName },
      { paranoidChecking: false },
    );
    subscriber.events.on('error', () => undefined);
    await subscriber.connect();
    return {
      notify: (channel, payload) => subscriber.notify(channel, payload),
      close: () => subscriber.close(),
    };
  },
  /** postgres.js `sql.notify()` on its default pool (max 10). */
  'postgres.js': async (url, appName) => {
    const sql = postgres(url, {
      connection: { application_name: appName },
      onnotice: () => undefined,
    });
    return {
      notify: (channel, payload) => sql.notify(channel, JSON.stringify(payload)),
      close: () => sql.end({ timeout: 5 }),
    };
  },
  /** pgnotify's `createNotifier().notify()` with its defaults (pool of 2, batches of 1 000). */
  pgnotify: async (url, appName) => {
    const notifier = createNotifier({
      connection: { connectionString: url, application_name: appName },
    });
    return {
      notify: (channel, payload) => notifier.notify(channel, payload),
      close: () => notifier.close(),
    };
  },
};
