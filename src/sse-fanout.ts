/**
 * The bridge's live fan-out: every channel with clients is ONE subscription on the listener
 * (a hub); a notification is framed and encoded once and the same bytes go to each client of
 * its channel. The last client to leave a channel unsubscribes its hub; a hub that ends under
 * its clients (unsubscribed by someone else) is forgotten and its clients are handed to
 * `ended`. Connection gaps go to the live clients of the lost channels. Durable channels do
 * not come through here (each client has its own journal subscription, sse-durable.ts).
 */
import type { Gap, Listener, Notification, Subscription } from './index.js';
import { Frame, type SseClient } from './sse-client.js';
import { gapFrame, notificationFrame } from './sse-wire.js';

interface Hub {
  readonly clients: Set<SseClient>;
  subscription: Subscription<unknown> | undefined;
  ready: Promise<void>;
}

/** @internal One listener subscription per channel with live clients, shared by them. */
export class Fanout {
  readonly #listener: Listener;
  readonly #idPrefix: string;
  readonly #report: (error: unknown) => void;
  readonly #ended: (clients: readonly SseClient[], error: Error | undefined) => void;
  readonly #hubs = new Map<string, Hub>();
  /** Hub unsubscribes under way (the last client left): `close()` waits for them. */
  readonly #unsubscribing = new Set<Promise<void>>();
  #hubCount = 0;
  #events = 0;

  /**
   * `idPrefix` makes the hubs' subscriber ids unique per handler. `ended` gets the clients of
   * a hub whose subscription ended while they were on it (and the error that ended it, if one
   * did): they get nothing more from it.
   */
  constructor(
    listener: Listener,
    idPrefix: string,
    report: (error: unknown) => void,
    ended: (clients: readonly SseClient[], error: Error | undefined) => void,
  ) {
    this.#listener = listener;
    this.#idPrefix = idPrefix;
    this.#report = report;
    this.#ended = ended;
  }

  /** Channels with a hub (at least one live client). */
  get channels(): number {
    return this.#hubs.size;
  }

  /** Notification events written to clients through hubs (one per client reached). */
  get events(): number {
    return this.#events;
  }

  /**
   * Adds `client` to `channel`'s hub, subscribing the hub when it is the first. Resolves once
   * the channel is listened to; rejects (and forgets the hub) when the subscribe fails.
   */
  join(channel: string, client: SseClient): Promise<void> {
    let hub = this.#hubs.get(channel);
    if (hub === undefined) {
      const created: Hub = {
        clients: new Set(),
        subscription: undefined,
        ready: Promise.resolve(),
      };
      hub = created;
      this.#hubs.set(channel, created);
      created.ready = this.#listener
        .subscribe(
          channel,
          (n: Notification<unknown>) => {
            // One frame, encoded once, for every client of the channel.
            const frame = Frame.of(notificationFrame(n));
            this.#events += created.clients.size;
            for (const c of created.clients) c.send(frame);
          },
          { id: `${this.#idPrefix}${channel}#${++this.#hubCount}`, concurrency: 0 },
        )
        .then(
          (subscription) => {
            created.subscription = subscription;
            // After the end in progress (an unsubscribe inside the registry) has finished.
            subscription.afterEnd((error) =>
              queueMicrotask(() => this.#hubEnded(channel, created, error)),
            );
          },
          (error: unknown) => {
            if (this.#hubs.get(channel) === created) this.#hubs.delete(channel);
            throw error;
          },
        );
    }
    hub.clients.add(client);
    return hub.ready;
  }

  /** Removes `client` from `channel`'s hub; the last one out unsubscribes it. */
  leave(channel: string, client: SseClient): void {
    const hub = this.#hubs.get(channel);
    if (hub === undefined || !hub.clients.delete(client) || hub.clients.size > 0) return;
    this.#hubs.delete(channel);
    const done = hub.ready.then(() => hub.subscription?.unsubscribe()).catch(this.#report);
    this.#unsubscribing.add(done);
    void done.finally(() => this.#unsubscribing.delete(done));
  }

  /** A hub's subscription ended: unless its clients left first, they are handed to `ended`. */
  #hubEnded(channel: string, hub: Hub, error: Error | undefined): void {
    if (this.#hubs.get(channel) !== hub) return; // the last client left, or close()
    this.#hubs.delete(channel);
    this.#ended([...hub.clients], error);
  }

  /** Unsubscribes every hub; the promises settle once the listener has let go of them. */
  close(): Promise<unknown>[] {
    const subs = [...this.#hubs.values()].map((hub) =>
      hub.ready.then(() => hub.subscription?.unsubscribe()),
    );
    this.#hubs.clear();
    return [...subs, ...this.#unsubscribing];
  }
}

/**
 * @internal Sends a connection gap to each client of `clients` served live on a lost channel, naming
 * only its own channels. Expired gaps belong to durable subscriptions: each client gets its
 * own through `openDurable`.
 */
export function sendGap(gap: Gap, clients: Iterable<SseClient>): void {
  if (gap.kind !== 'gap') return;
  const lost = new Set(gap.channels);
  for (const client of clients) {
    const mine = client.live.filter((channel) => lost.has(channel));
    if (mine.length === 0) continue;
    client.send(
      gapFrame({
        reason: 'connection',
        channels: mine,
        message: `the listener's connection was lost for ${gap.downtimeMs} ms: ${gap.cause.message}`,
        disconnectedAt: gap.disconnectedAt,
        reconnectedAt: gap.reconnectedAt,
        downtimeMs: gap.downtimeMs,
      }),
    );
  }
}
