/**
 * The demo's durable act: a named durable consumer runs in a child process (demo-consumer.ts)
 * while a writer commits sequence-numbered durable messages; the consumer's process is
 * SIGKILLed, the server restarted (the demo's own embedded server; on a configured server
 * that step is skipped), a new consumer process with the same name catches up, and the act
 * counts what was sent (committed journal rows), handled, lost and handled twice.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { plural } from '../errors.js';
import { installSchema, notify, readJournal } from '../index.js';
import { sleep } from './common.js';
import { Tally } from './demo-tally.js';
import type { EmbeddedServer } from './embedded.js';
import { heading, paint, thousands } from './format.js';

/** What the act needs from the demo. */
export interface DurableActContext {
  url: string;
  /** The demo's own server, restarted mid-stream; undefined on a configured server. */
  server: EmbeddedServer | undefined;
  say: (line?: string) => void;
  color: boolean;
  signal: AbortSignal;
}

/** The consumer's reports (see demo-consumer.ts). */
type ConsumerMessage =
  | { type: 'ready' }
  | { type: 'handled'; seq: number; cursor: string }
  | { type: 'failed'; error: string };

/** Generous deadlines: the act must finish on a loaded machine, and fail clearly if wedged. */
const STEP_MS = 30_000;

/** The consumer's script next to this module: .ts under tsx (a clone), .js when built. */
function consumerScript(): string {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return fileURLToPath(new URL(`./demo-consumer${ext}`, import.meta.url));
}

/** Rejects after `ms` (or on abort) with `what`; resolves with `promise`. */
async function within<T>(promise: Promise<T>, ms: number, what: string, signal: AbortSignal) {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`durable act: ${what} within ${ms} ms`)), ms);
        onAbort = () => reject(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
  }
}

/** Waits until `tally` counts `n`; throws after {@link STEP_MS}. */
async function reach(tally: Tally, n: number, what: string, signal: AbortSignal): Promise<void> {
  if (!(await tally.reached(n, STEP_MS, signal)))
    throw new Error(`durable act: not ${what} within ${STEP_MS} ms (${tally.count} so far)`);
}

/** Sends `{ seq }` durable messages one after another until stopped, through restarts. */
class Writer {
  committed = new Tally();
  failures = 0;
  #stop = false;
  #done: Promise<void> | undefined;

  constructor(
    private readonly url: string,
    private readonly schema: string,
    private readonly channel: string,
  ) {}

  start(): void {
    this.#done = this.#run();
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#done;
  }

  async #run(): Promise<void> {
    let client: pg.Client | undefined;
    let seq = 1;
    while (!this.#stop) {
      try {
        if (client === undefined) {
          client = new pg.Client({
            connectionString: this.url,
            application_name: 'pgnotify-demo-writer',
          });
          client.on('error', () => undefined); // the next query fails and reconnects
          await client.connect();
        }
        await notify(client, this.channel, { seq }, { durable: true, schema: this.schema });
        seq++;
        this.committed.add();
        await sleep(5);
      } catch {
        // The server is restarting: a statement cut off there did not commit (sent counts the
        // journal's rows, not these calls). Reconnect and send the same seq again.
        this.failures++;
        await client?.end().catch(() => undefined);
        client = undefined;
        await sleep(100);
      }
    }
    await client?.end().catch(() => undefined);
  }
}

/** One consumer process and what it reported. */
class Consumer {
  readonly child: ChildProcess;
  readonly ready: Promise<void>;
  readonly exited: Promise<void>;

  constructor(args: string[], onHandled: (seq: number, cursor: string) => void) {
    this.child = fork(consumerScript(), args, { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    this.ready = new Promise((resolve, reject) => {
      this.child.on('message', (message: ConsumerMessage) => {
        if (message.type === 'ready') resolve();
        else if (message.type === 'handled') onHandled(message.seq, message.cursor);
        else reject(new Error(`the consumer could not start: ${message.error}`));
      });
      this.child.once('exit', (code) => reject(new Error(`the consumer exited (code ${code})`)));
    });
    this.ready.catch(() => undefined);
  }

  /** Ends the process: stop (cursor stored) on disconnect, SIGKILL if it hangs. */
  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Every committed row of `channel`: its cursor. */
async function journalCursors(url: string, schema: string, channel: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url, application_name: 'pgnotify-demo' });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const cursors: string[] = [];
    let after = 'start';
    for (;;) {
      const page = await readJournal(client, {
        schema,
        channels: [channel],
        after,
        limitRows: 5000,
      });
      for (const row of page.rows) cursors.push(row.cursor);
      after = page.next;
      if (page.caughtUp) return cursors;
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** 6. The durable act. */
export async function durableAct(context: DurableActContext): Promise<void> {
  const { url, server, say, color, signal } = context;
  const show = (line: string): void => say(`  ${line}`);
  const dim = (line: string): void => show(paint('dim', line, color));
  const event = (line: string): void => show(paint('yellow', line, color));
  say(heading('6. Durable: consumer killed and server restarted mid-stream, nothing lost', color));
  // The demo's own server uses the default schema; a configured one gets a schema of this run.
  const schema =
    server === undefined ? `pgnotify_demo_${randomBytes(3).toString('hex')}` : 'pgnotify';
  const channel = 'payments';
  const name = 'billing';
  await installSchema({ connection: url, schema });
  dim(
    `installSchema() → journal in schema ${schema}; consumer ${JSON.stringify(name)} in a child process`,
  );
  const handled = new Tally();
  const seen = new Map<string, number>();
  let lastSeq = 0;
  const onHandled = (seq: number, cursor: string): void => {
    seen.set(cursor, (seen.get(cursor) ?? 0) + 1);
    lastSeq = seq;
    handled.add();
  };
  const args = [url, schema, channel, name];
  const writer = new Writer(url, schema, channel);
  let consumer = new Consumer(args, onHandled);
  try {
    await within(consumer.ready, STEP_MS, 'the consumer to start', signal);
    show(`consumer pid ${consumer.child.pid} subscribed: { durable: { consumer: '${name}' } }`);
    writer.start();
    dim(`writer: notify(client, '${channel}', { seq }, { durable: true }), one commit each`);
    await reach(handled, 100, '100 messages handled', signal);
    consumer.child.kill('SIGKILL');
    await consumer.exited;
    event(`kill -9 ${consumer.child.pid}: the consumer died after handling seq ${lastSeq}`);
    const atKill = writer.committed.count;
    await reach(writer.committed, atKill + 50, '50 more messages sent', signal);
    if (server === undefined) {
      dim('server restart skipped: the configured server is not the demo’s to restart');
    } else {
      const began = performance.now();
      await server.restart();
      event(
        `server restarted (fast shutdown, start) in ${thousands(performance.now() - began)} ms; the writer retries`,
      );
    }
    const atRestart = writer.committed.count;
    const behind = atRestart - seen.size;
    consumer = new Consumer(args, onHandled);
    await within(consumer.ready, STEP_MS, 'the new consumer to start', signal);
    show(
      `consumer pid ${consumer.child.pid} started, same name: it resumes from its stored cursor (${thousands(behind)} committed messages it never handled)`,
    );
    await reach(writer.committed, atRestart + 100, '100 more messages sent', signal);
    await writer.stop();
    const committed = await journalCursors(url, schema, channel);
    // Everything committed, handled at least once: wait for the catch-up.
    const missing = (): number => committed.filter((c) => !seen.has(c)).length;
    for (const until = performance.now() + STEP_MS; missing() > 0 && performance.now() < until; )
      await handled.reached(handled.count + 1, 1000, signal);
    const lost = missing();
    const duplicates = handled.count - seen.size;
    if (writer.failures > 0)
      dim(
        `the writer's statements failed ${plural(writer.failures, 'time')} while the server was down, and were sent again`,
      );
    show(
      `sent ${thousands(committed.length)} (committed), handled ${thousands(handled.count)}, ` +
        paint('bold', `lost ${lost}`, color) +
        `, duplicates ${duplicates}`,
    );
    dim(
      'duplicates: only messages handled but not yet acknowledged when the process died (the cursor is stored every 100 ms or 1 000 messages)',
    );
  } finally {
    await writer.stop();
    await consumer.close();
    if (server === undefined) {
      const client = new pg.Client({ connectionString: url });
      await client.connect().then(
        () => client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`),
        () => undefined,
      );
      await client.end().catch(() => undefined);
    }
  }
}
