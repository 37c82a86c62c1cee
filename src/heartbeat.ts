/**
 * Finding a dead connection and a drifting server. After `intervalMs` without traffic from
 * the server, one query asks for the server's LISTEN set and its notification queue usage;
 * no answer within `timeoutMs` declares the connection dead. The answer repairs a LISTEN set
 * that drifted from the confirmed one (`PGNOTIFY_LISTEN_MISMATCH`) and warns of a filling
 * queue (`PGNOTIFY_QUEUE_USAGE_HIGH`). Timers and the clock are injectable for tests.
 */
import { ErrorCode, PgNotifyError, plural } from './errors.js';
import type { Query } from './listen-set.js';
import { HEARTBEAT_SQL } from './sql.js';
import type { HeartbeatOptions } from './types.js';

/** The clock and timers the heartbeat uses (the real ones unless a test injects fakes). */
export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Node's own clock and timers. */
export const systemTimers: Timers = {
  now: Date.now,
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** What the heartbeat needs from the session. */
export interface HeartbeatHost {
  /** The live connection's query, or undefined when none is live. */
  live(): Query | undefined;
  /** The connection behind `query` did not answer in time, or failed: it is dead. */
  dead(query: Query, cause: unknown): void;
  /** Adopts the server's LISTEN set where it differs; returns how many channels drifted. */
  repair(serverChannels: readonly string[]): number;
  /** Reports an error that no call can reject. */
  error(error: PgNotifyError): void;
}

interface HeartbeatRow {
  channels: string[];
  usage: number | string;
}

/** The heartbeat of one session; started on each new connection, stopped when it is lost. */
export class Heartbeat {
  /** When the server last sent anything (ms since the epoch); every notification sets it. */
  lastActivity = 0;
  #timer: unknown;
  readonly #options: Required<HeartbeatOptions> | false;
  readonly #host: HeartbeatHost;
  readonly #timers: Timers;

  constructor(
    options: Required<HeartbeatOptions> | false,
    host: HeartbeatHost,
    timers: Timers = systemTimers,
  ) {
    this.#options = options;
    this.#host = host;
    this.#timers = timers;
  }

  /** Starts watching the live connection (a new connection counts as traffic). */
  start(): void {
    this.lastActivity = this.#timers.now();
    this.#arm();
  }

  /** Stops watching. */
  stop(): void {
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(delayMs?: number): void {
    const options = this.#options;
    if (options === false) return;
    this.stop();
    this.#timer = this.#timers.setTimeout(() => this.#beat(), delayMs ?? options.intervalMs);
  }

  #beat(): void {
    const options = this.#options;
    this.#timer = undefined;
    const query = this.#host.live();
    if (options === false || query === undefined) return;
    const quietMs = this.#timers.now() - this.lastActivity;
    if (quietMs < options.intervalMs) {
      this.#arm(options.intervalMs - quietMs);
      return;
    }
    let settled = false;
    const timer = this.#timers.setTimeout(() => {
      if (settled) return;
      settled = true;
      this.#host.dead(
        query,
        new PgNotifyError(
          ErrorCode.HEARTBEAT_TIMEOUT,
          `heartbeat got no answer within ${options.timeoutMs} ms; the connection is dead`,
          { retryable: true },
        ),
      );
    }, options.timeoutMs);
    query(HEARTBEAT_SQL).then(
      (result) => {
        if (settled) return;
        settled = true;
        this.#timers.clearTimeout(timer);
        if (this.#host.live() !== query) return;
        this.lastActivity = this.#timers.now();
        const row = (result as { rows?: HeartbeatRow[] }).rows?.[0];
        if (row !== undefined) this.#check(row.channels, Number(row.usage), options.queueWarnRatio);
        this.#arm();
      },
      (error: unknown) => {
        if (settled) return;
        settled = true;
        this.#timers.clearTimeout(timer);
        this.#host.dead(query, error);
      },
    );
  }

  #check(serverChannels: readonly string[], usage: number, warnRatio: number): void {
    const drifted = this.#host.repair(serverChannels);
    if (drifted > 0) {
      this.#host.error(
        new PgNotifyError(
          ErrorCode.LISTEN_MISMATCH,
          `the server's LISTEN set differed from the wanted one on ${plural(drifted, 'channel')}; repairing`,
        ),
      );
    }
    if (usage > warnRatio) {
      this.#host.error(
        new PgNotifyError(
          ErrorCode.QUEUE_USAGE_HIGH,
          `the server's notification queue is ${(usage * 100).toFixed(1)}% full; a stalled listener` +
            ' somewhere in the cluster is holding it, and notifying commits fail when it is full',
        ),
      );
    }
  }
}
