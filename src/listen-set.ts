/**
 * The server's LISTEN set: which channels the server confirmed on the current connection,
 * and the batches that bring it to what is wanted. "Wanted" is not stored here: it is asked
 * of the registry (`isWanted`), for the channels a change touched (the work list). Changes
 * made in the same tick go out as one `UNLISTEN …; LISTEN …` query, one round trip.
 *
 * It knows a query function, not sockets: the session tells it which connection is live.
 */
import { ErrorCode, PgNotifyError, toError } from './errors.js';
import { isConnectionError } from './pg-client.js';
import { listenSql, unlistenSql } from './sql.js';

/** Runs SQL on one connection. The same function object stands for the same connection. */
export type Query = (sql: string) => Promise<unknown>;

/** A promise with its settle functions; a rejection nobody awaits is not unhandled. */
export interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(error: Error): void;
}

/** A new {@link Deferred}. */
export function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/** What the listen set needs from the session that owns the connection. */
export interface ListenSetHost {
  /** Whether the server must listen to `channel` (the registry's answer). */
  isWanted(channel: string): boolean;
  /** The live connection's query, or undefined when none is live. */
  live(): Query | undefined;
  /**
   * A batch that cannot go out now (no live connection, or it was lost under the batch):
   * settle it with the next connection, or reject it when the session is over.
   */
  park(batch: Deferred): void;
  /** The batch's query failed because the connection is unusable. */
  lost(query: Query, cause: unknown): void;
}

/** The LISTEN set of one session, across its connections. */
export class ListenSet {
  #confirmed = new Set<string>();
  /** Channels whose wanted state may differ from the confirmed one: the next batch's work. */
  readonly #dirty = new Set<string>();
  #pending: Deferred | undefined;
  #inflight: Deferred | undefined;
  readonly #host: ListenSetHost;

  constructor(host: ListenSetHost) {
    this.#host = host;
  }

  /** Whether the server confirmed LISTEN on `channel` on the current connection. */
  isListening(channel: string): boolean {
    return this.#confirmed.has(channel);
  }

  /** How many channels the server confirmed. */
  get size(): number {
    return this.#confirmed.size;
  }

  /** Whether a change waits to be sent. */
  get dirty(): boolean {
    return this.#dirty.size > 0;
  }

  /** Channels whose wanted state may have changed: the next batch looks at them. */
  touch(channels: Iterable<string>): void {
    for (const channel of channels) this.#dirty.add(channel);
  }

  /**
   * Resolves once the server's LISTEN set includes every change touched before the call.
   * Only for a live session: the session decides what happens otherwise.
   */
  sync(): Promise<void> {
    if (this.#dirty.size === 0)
      return this.#pending?.promise ?? this.#inflight?.promise ?? Promise.resolve();
    if (this.#pending === undefined) {
      this.#pending = deferred();
      if (this.#inflight === undefined) queueMicrotask(() => void this.#flush());
    }
    return this.#pending.promise;
  }

  /**
   * A connection is about to LISTEN every wanted channel itself: the work list is cleared
   * (the channels are in `wanted`); {@link connected} or {@link connectFailed} follows.
   */
  connecting(): void {
    this.#dirty.clear();
  }

  /** The new connection confirmed exactly `channels`. */
  connected(channels: readonly string[]): void {
    this.#confirmed = new Set(channels);
  }

  /** The attempt that was to LISTEN `channels` failed: the next one must include them. */
  connectFailed(channels: readonly string[]): void {
    this.touch(channels);
  }

  /** The connection is gone: returns what it listened to, and forgets it. */
  reset(): string[] {
    const channels = [...this.#confirmed];
    this.#confirmed = new Set();
    return channels;
  }

  /**
   * Compares the server's own LISTEN set with the confirmed one (outside of a batch) and, when
   * they differ, adopts the server's and marks the differences for the next batch. Returns
   * how many channels drifted.
   */
  repair(serverChannels: readonly string[]): number {
    if (this.#inflight !== undefined || this.#pending !== undefined) return 0;
    const onServer = new Set(serverChannels);
    const drifted: string[] = [];
    for (const channel of this.#confirmed)
      if (!onServer.has(channel) && !this.#dirty.has(channel)) drifted.push(channel);
    for (const channel of onServer)
      if (!this.#confirmed.has(channel) && !this.#dirty.has(channel)) drifted.push(channel);
    if (drifted.length > 0) {
      this.#confirmed = onServer;
      this.touch(drifted);
    }
    return drifted.length;
  }

  /** Rejects the batch waiting to go out (the session stopped or failed). */
  abandon(error: Error): void {
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.reject(error);
  }

  /** Sends one LISTEN/UNLISTEN batch for the channels touched since the last one. */
  async #flush(): Promise<void> {
    const batch = this.#pending;
    this.#pending = undefined;
    if (batch === undefined) return;
    const query = this.#host.live();
    if (query === undefined) {
      this.#host.park(batch);
      return;
    }
    const listen: string[] = [];
    const unlisten: string[] = [];
    for (const channel of this.#dirty) {
      const wanted = this.#host.isWanted(channel);
      if (wanted && !this.#confirmed.has(channel)) listen.push(channel);
      else if (!wanted && this.#confirmed.has(channel)) unlisten.push(channel);
    }
    this.#dirty.clear();
    if (listen.length === 0 && unlisten.length === 0) {
      batch.resolve();
      return;
    }
    this.#inflight = batch;
    try {
      await query(unlistenSql(unlisten) + listenSql(listen));
      if (this.#host.live() === query) {
        for (const channel of unlisten) this.#confirmed.delete(channel);
        for (const channel of listen) this.#confirmed.add(channel);
      }
      batch.resolve();
    } catch (cause) {
      if (this.#host.live() === query && !isConnectionError(cause)) {
        // Refused, but the connection lives: these channels go again with the next batch.
        this.touch(listen);
        this.touch(unlisten);
        batch.reject(
          new PgNotifyError(
            ErrorCode.LISTEN_FAILED,
            `LISTEN/UNLISTEN failed: ${toError(cause).message}`,
            { cause, retryable: true },
          ),
        );
      } else {
        this.#host.lost(query, cause);
        // The replacement connection LISTENs every wanted channel; these callers wait for it.
        this.#host.park(batch);
      }
    } finally {
      this.#inflight = undefined;
      if (this.#pending !== undefined) void this.#flush();
    }
  }
}
