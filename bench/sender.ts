/**
 * Bulk notifications for the benchmark, sent from a child process (sender-child.ts) on its
 * own connection.
 *
 * Why a child process: the workloads measure the client CPU a library spends per received
 * notification with `process.cpuUsage()`, which counts every thread of the process. An
 * in-process sender would add the cost of reading its own 100k result rows into every
 * figure — equal for all contestants, but it would blur the ratios. In a child it is simply
 * not counted; what remains in the window is one small IPC message per statement.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rpc } from './rpc.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/**
 * `count` JSON notifications of ~120 bytes on `channel`, in one statement (one transaction).
 * Exactly the statement of issue 5; the payload varies with i, so PostgreSQL does not fold
 * any of them as duplicates.
 */
export const BULK_SQL =
  "SELECT pg_notify($1, json_build_object('id', i, 'name', 'user_' || i, 'email', 'user' || i || '@example.com', 'tags', json_build_array('a','b','c'), 'active', true)::text) FROM generate_series(1, $2) i";

/** Like BULK_SQL, but notification i goes to channel `$1 || (i % $3)`. */
export const SPREAD_SQL =
  "SELECT pg_notify($1::text || (i % $3::int), json_build_object('id', i, 'name', 'user_' || i, 'email', 'user' || i || '@example.com', 'tags', json_build_array('a','b','c'), 'active', true)::text) FROM generate_series(1, $2) i";

export class Sender {
  private constructor(private readonly rpc: Rpc) {}

  /** Forks the sender and waits until it is connected to `url` as `applicationName`. */
  static async start(url: string, applicationName: string): Promise<Sender> {
    const rpc = await Rpc.start(
      path.join(HERE, 'sender-child.ts'),
      [applicationName],
      { DATABASE_URL: url },
      'sender',
    );
    return new Sender(rpc);
  }

  /** Runs one statement in the child; resolves when it has committed. */
  query(text: string, values: unknown[]): Promise<void> {
    return this.rpc.request({ text, values });
  }

  /** `count` JSON notifications on `channel` in one statement. */
  bulk(channel: string, count: number): Promise<void> {
    return this.query(BULK_SQL, [channel, count]);
  }

  /** `count` JSON notifications spread over the channels `prefix + 0 … prefix + (channels - 1)`. */
  spread(prefix: string, count: number, channels: number): Promise<void> {
    return this.query(SPREAD_SQL, [prefix, count, channels]);
  }

  /** Disconnects the child (it closes its connection and exits) and waits for its exit. */
  close(): Promise<void> {
    return this.rpc.close();
  }
}
