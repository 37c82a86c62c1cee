/**
 * Named consumers' cursor writes on a connection of their own: one per listener, opened at the
 * first write and closed with the listener. A cursor write waits for its commit's WAL flush;
 * on the listener's connection (one statement at a time) that wait sat between two journal
 * reads (a catch-up runs 10–15 % faster without it: docs/benchmark.md, (j)). The writes of
 * every named consumer of the listener share it, one statement at a time.
 */
import type pg from 'pg';
import { ErrorCode, PgNotifyError } from './errors.js';
import { saveCursor } from './journal.js';
import type { Queryable } from './notifier.js';
import { closeClient, isConnectionError, makeClient, withinTimeout } from './pg-client.js';
import { QueryQueue } from './query-queue.js';
import type { ConnectionOption } from './types.js';

/** How the writer connects: the listener's own connection settings. */
export interface CursorWriterOptions {
  readonly connection: ConnectionOption | undefined;
  readonly applicationName: string;
  readonly connectTimeoutMs: number;
}

interface Link {
  readonly client: pg.Client;
  readonly queue: QueryQueue;
  /** The connection failed ('error' event): the next write replaces it. */
  broken: boolean;
}

/** @internal */
export class CursorWriter {
  readonly #options: CursorWriterOptions;
  #link: Promise<Link> | undefined;
  #closed = false;

  constructor(options: CursorWriterOptions) {
    this.#options = options;
  }

  /**
   * Stores `cursor` for `consumer` (unless the stored one is at or past it). A connection that
   * failed since the last write (e.g. closed by the server while idle) is replaced, once. A
   * write that takes longer than `connectTimeoutMs` (a link gone silent, which the OS may not
   * notice for hours) fails and drops its connection. After {@link close}, on a connection
   * opened for this write alone.
   */
  async write(schema: string, consumer: string, cursor: string): Promise<void> {
    const store = (link: Link): Promise<unknown> =>
      saveCursor(
        { query: (text, values) => link.queue.run('data', text, values) } as Queryable,
        consumer,
        cursor,
        { schema },
      );
    if (this.#closed) {
      const link = await this.#connect();
      try {
        await this.#timed(link, store);
      } finally {
        await closeClient(link.client);
      }
      return;
    }
    for (let attempt = 0; ; attempt++) {
      const link = await this.#current();
      try {
        await this.#timed(link, store);
        return;
      } catch (error) {
        if (!isConnectionError(error) && !link.broken) throw error;
        this.#drop(link);
        if (attempt > 0 || this.#closed) throw error;
      }
    }
  }

  /** Runs `store` on `link` within `connectTimeoutMs`; past it, cuts the link and rejects. */
  async #timed(link: Link, store: (link: Link) => Promise<unknown>): Promise<void> {
    await withinTimeout(link.client, store(link), this.#options.connectTimeoutMs, 'a cursor write');
  }

  /** Closes the connection (writes after this open one of their own). */
  async close(): Promise<void> {
    this.#closed = true;
    const link = this.#link;
    this.#link = undefined;
    if (link === undefined) return;
    await link.then(
      (l) => closeClient(l.client),
      () => undefined,
    );
  }

  /** The shared connection, opened when missing, failed to open, or broken. */
  #current(): Promise<Link> {
    const pending = this.#link;
    if (pending === undefined) return this.#open();
    return pending.then(
      (link) => (link.broken ? this.#reopen(pending) : link),
      () => this.#reopen(pending),
    );
  }

  /** Replaces `stale`, unless another write already did (then that one is used). */
  #reopen(stale: Promise<Link>): Promise<Link> {
    return this.#link === stale ? this.#open() : this.#current();
  }

  #open(): Promise<Link> {
    // A write that was on its way when close() ran: nothing may reopen the shared connection.
    if (this.#closed) {
      return Promise.reject(
        new PgNotifyError(ErrorCode.CLOSED, 'the listener stopped during a cursor write'),
      );
    }
    const next = this.#connect();
    this.#link = next;
    return next;
  }

  #drop(link: Link): void {
    link.broken = true;
    void closeClient(link.client);
  }

  async #connect(): Promise<Link> {
    const { connection, applicationName, connectTimeoutMs } = this.#options;
    const client = await makeClient(connection, applicationName);
    const link: Link = { client, queue: new QueryQueue(client), broken: false };
    client.on('error', () => {
      link.broken = true;
    });
    client.on('end', () => {
      link.broken = true;
    });
    try {
      await withinTimeout(client, client.connect(), connectTimeoutMs, 'connecting');
    } catch (error) {
      await closeClient(client);
      throw error;
    }
    return link;
  }
}
