/**
 * The statements of one listener connection, one at a time. pg@8 queues a `client.query()`
 * made while another runs, but deprecates it (a DeprecationWarning now, removed in pg@9), and
 * the listener connection carries the session's own statements (LISTEN/UNLISTEN batches, the
 * heartbeat, ping) beside those of pgnotify's modules (durable journal reads, cursor writes).
 *
 * Two lanes, each first in first out, one statement in flight across both: a queued `control`
 * statement goes before every queued `data` one (never before the one in flight), so a LISTEN
 * batch or the heartbeat waits for at most one durable statement, whose pages are bounded to
 * take milliseconds. Nothing is dropped: when the connection dies, pg rejects each statement
 * as it is handed over, with a connection error.
 */
import type pg from 'pg';

/** `control`: the session's own statements; `data`: everything else. */
export type Lane = 'control' | 'data';

interface Job {
  readonly text: string;
  readonly values: unknown[] | undefined;
  resolve(result: pg.QueryResult): void;
  reject(error: unknown): void;
}

/** One connection's statement queue. */
export class QueryQueue {
  readonly #client: Pick<pg.Client, 'query'>;
  readonly #lanes: Record<Lane, Job[]> = { control: [], data: [] };
  #busy = false;

  constructor(client: Pick<pg.Client, 'query'>) {
    this.#client = client;
  }

  /** Statements waiting (not counting the one in flight). */
  get waiting(): number {
    return this.#lanes.control.length + this.#lanes.data.length;
  }

  /** Runs `text` once every statement before it in its lane (and queued control ones) ran. */
  run<R extends pg.QueryResultRow = pg.QueryResultRow>(
    lane: Lane,
    text: string,
    values?: readonly unknown[],
  ): Promise<pg.QueryResult<R>> {
    return new Promise<pg.QueryResult<R>>((resolve, reject) => {
      this.#lanes[lane].push({
        text,
        values: values as unknown[] | undefined,
        resolve: resolve as (result: pg.QueryResult) => void,
        reject,
      });
      this.#next();
    });
  }

  #next(): void {
    if (this.#busy) return;
    const job = this.#lanes.control.shift() ?? this.#lanes.data.shift();
    if (job === undefined) return;
    this.#busy = true;
    let result: Promise<pg.QueryResult>;
    try {
      result = this.#client.query(job.text, job.values);
    } catch (error) {
      result = Promise.reject(error);
    }
    result.then(job.resolve, job.reject).finally(() => {
      this.#busy = false;
      this.#next();
    });
  }
}
