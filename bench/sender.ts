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
import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

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

interface Reply {
  id?: number;
  ok?: boolean;
  ready?: boolean;
  error?: string;
}

export class Sender {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(): void; reject(error: Error): void }>();

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (message: Reply) => {
      if (message.id === undefined) return;
      const waiter = this.pending.get(message.id);
      if (waiter === undefined) return;
      this.pending.delete(message.id);
      if (message.ok === true) waiter.resolve();
      else waiter.reject(new Error(`sender: ${message.error ?? 'failed'}`));
    });
    child.on('exit', (code, signal) => {
      for (const waiter of this.pending.values()) {
        waiter.reject(new Error(`sender exited (code ${code}, signal ${signal})`));
      }
      this.pending.clear();
    });
  }

  /** Forks the sender and waits until it is connected to `url` as `applicationName`. */
  static async start(url: string, applicationName: string): Promise<Sender> {
    const child = fork(path.join(HERE, 'sender-child.ts'), [applicationName], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, DATABASE_URL: url },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (message: Reply): void => {
        if (message.ready === undefined) return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (message.ready) resolve();
        else reject(new Error(`sender could not connect: ${message.error ?? '?'}`));
      };
      const onExit = (code: number | null): void =>
        reject(new Error(`sender exited during startup (code ${code})`));
      child.on('message', onMessage);
      child.on('exit', onExit);
    });
    return new Sender(child);
  }

  /** Runs one statement in the child; resolves when it has committed. */
  query(text: string, values: unknown[]): Promise<void> {
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.send({ id, text, values });
    });
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
  async close(): Promise<void> {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (child.connected) child.disconnect();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}
