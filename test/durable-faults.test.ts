/**
 * Proof under faults (issue 14 item 8), on a private server: sequence-numbered durable traffic
 * from concurrent writers (some transactions rolled back) while the consumer — a child process
 * acknowledging through a named consumer (test/fixtures/durable-consumer.ts) — is SIGKILLed and
 * restarted, its backend is terminated, the TCP proxy in front of the server is stalled and
 * cut, and the server restarts with an immediate shutdown. The journal is the truth of what
 * committed (a COMMIT cut by the restart has an unknown outcome until read back).
 *
 * Asserted: every committed message handled, nothing rolled back handled, per-channel journal
 * order within each consumer process, no duplicate within one process, and duplicates across
 * processes only right after a SIGKILL: the last messages the killed process handled, at most
 * MAX_UNSTORED (2 000) per kill — in practice those of the last 100 ms.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { MAX_UNSTORED } from '../src/durable-acks.js';
import { installSchema } from '../src/journal.js';
import { appendDurable } from '../src/journal-write.js';
import { waitFor } from './helpers/db.js';
import { readAll } from './helpers/journal.js';
import { startProxy, type Proxy as TcpProxy } from './helpers/proxy.js';
import { type PrivateServer, startPrivateServer } from './helpers/server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CHANNELS = ['fault_a', 'fault_b'];
const CONSUMER = 'fault-consumer';

let server: PrivateServer;
let proxy: TcpProxy;

before(async () => {
  server = await startPrivateServer();
  await installSchema({ connection: server.url });
  proxy = await startProxy({ targetHost: '127.0.0.1', targetPort: server.port });
});
after(async () => {
  await proxy?.close();
  await server?.destroy();
});

interface Handled {
  run: number;
  channel: string;
  payload: string;
  cursor: string;
}

/** The consumer processes, one after another, and every line they reported. */
class Consumers {
  readonly handled: Handled[] = [];
  readonly killed = new Set<number>();
  run = 0;
  disconnects = 0;
  stderr = '';
  #child: ChildProcess | undefined;

  async start(): Promise<void> {
    const run = ++this.run;
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'test/fixtures/durable-consumer.ts',
        proxy.url(server.url),
        CONSUMER,
        CHANNELS.join(','),
      ],
      { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.#child = child;
    let ready = false;
    let rest = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        if (line === 'READY') ready = true;
        else if (line === 'D' || line === 'R') this.disconnects++;
        else if (line.startsWith('H\t')) {
          const [, channel, payload, cursor] = line.split('\t') as string[];
          this.handled.push({ run, channel, payload, cursor } as Handled);
        }
      }
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-4000);
    });
    await waitFor(() => ready || child.exitCode !== null, {
      timeoutMs: 20_000,
      message: 'the consumer process to be ready',
    });
    assert.ok(ready, `the consumer started (stderr: ${this.stderr})`);
  }

  get exitCode(): number | null | undefined {
    return this.#child?.exitCode;
  }

  async kill(signal: NodeJS.Signals): Promise<void> {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null) return;
    if (signal === 'SIGKILL') this.killed.add(this.run);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }

  /** Waits until `n` more messages were handled. */
  async progress(n: number, what: string): Promise<void> {
    const target = this.handled.length + n;
    await waitFor(() => this.handled.length >= target, {
      timeoutMs: 20_000,
      message: `${n} more handled ${what} (stderr: ${this.stderr.slice(-500)})`,
    });
  }
}

/** A writer loop: transactions of 1-4 messages, every fifth rolled back; survives restarts. */
function writer(w: number, state: { stop: boolean; rolledBack: Set<string> }): Promise<void> {
  return (async () => {
    let client: pg.Client | undefined;
    let n = 0;
    while (!state.stop) {
      try {
        if (client === undefined) {
          client = new pg.Client({ connectionString: server.url });
          client.on('error', () => undefined);
          await client.connect();
        }
        const batch: [string, string][] = [];
        const size = 1 + (n % 4);
        for (let i = 0; i < size; i++) {
          n++;
          batch.push([CHANNELS[n % 2] as string, `${w}:${n}`]);
        }
        await client.query('BEGIN');
        for (const [channel, payload] of batch) await appendDurable(client, channel, payload);
        if (n % 5 === 0) {
          await client.query('ROLLBACK');
          for (const [, payload] of batch) state.rolledBack.add(payload);
        } else await client.query('COMMIT');
      } catch {
        // The server went away mid-transaction: the journal tells what committed.
        await client?.end().catch(() => undefined);
        client = undefined;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await client?.end().catch(() => undefined);
  })();
}

test('killed process, terminated backend, stalled and cut proxy, immediate restart: nothing lost, nothing rolled back, order kept, duplicates bounded', {
  timeout: 120_000,
}, async () => {
  const consumers = new Consumers();
  const state = { stop: false, rolledBack: new Set<string>() };
  const writers = [1, 2, 3].map((w) => writer(w, state));
  const admin = new pg.Client({ connectionString: server.url });
  admin.on('error', () => undefined);
  try {
    await consumers.start();
    await consumers.progress(200, 'at first');

    // (a) the consumer's process is SIGKILLed and restarted under the same name
    await consumers.kill('SIGKILL');
    await consumers.start();
    await consumers.progress(200, 'after the first SIGKILL');

    // (b) its backend is terminated
    await admin.connect();
    await admin.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgnotify-fault-consumer'",
    );
    await consumers.progress(200, 'after pg_terminate_backend');

    // (c) the proxy is stalled (the heartbeat finds it), then cut
    const lost = consumers.disconnects;
    proxy.stall();
    await waitFor(() => consumers.disconnects > lost, {
      timeoutMs: 20_000,
      message: `the stall to be noticed (exit ${consumers.exitCode}; stderr: ${consumers.stderr.slice(-1500)})`,
    });
    proxy.resume();
    await consumers.progress(200, 'after the stall');
    proxy.cut();
    await consumers.progress(200, 'after the cut');

    // (a) again, mid-stream
    await consumers.kill('SIGKILL');
    await consumers.start();
    await consumers.progress(200, 'after the second SIGKILL');

    // (d) the server restarts with an immediate shutdown
    await admin.end().catch(() => undefined);
    await server.restart('immediate');
    await consumers.progress(200, 'after the immediate restart');
  } catch (error) {
    await consumers.kill('SIGKILL');
    throw error;
  } finally {
    state.stop = true;
    await Promise.all(writers);
  }
  // The truth: what the journal holds.
  const pool = new pg.Pool({ connectionString: server.url, max: 1 });
  pool.on('error', () => undefined);
  const journal = await readAll(pool, 'pgnotify', 'start', { limitRows: 5000 });
  await pool.end();
  const committed = new Map(journal.map((r) => [r.payload, r]));
  await waitFor(
    () => {
      const seen = new Set(consumers.handled.map((h) => h.payload));
      return journal.every((r) => seen.has(r.payload));
    },
    { timeoutMs: 30_000, message: 'every committed message handled' },
  );
  await consumers.kill('SIGTERM');

  const handled = consumers.handled;
  const lostCount = journal.filter((r) => !handled.some((h) => h.payload === r.payload)).length;
  const rolledBackHandled = handled.filter((h) => state.rolledBack.has(h.payload)).length;
  assert.equal(lostCount, 0, 'nothing committed was lost');
  assert.equal(rolledBackHandled, 0, 'nothing rolled back was handled');
  for (const h of handled) {
    assert.equal(committed.get(h.payload)?.cursor, h.cursor, `${h.payload} has its journal cursor`);
  }
  // Per process: journal order per channel, and no message twice.
  let reordered = 0;
  const byRun = new Map<number, Handled[]>();
  for (const h of handled) byRun.set(h.run, [...(byRun.get(h.run) ?? []), h]);
  for (const list of byRun.values()) {
    const seen = new Set<string>();
    const last = new Map<string, string>();
    for (const h of list) {
      assert.ok(!seen.has(h.payload), `no duplicate within one process (${h.payload})`);
      seen.add(h.payload);
      if ((last.get(h.channel) ?? '') >= h.cursor) reordered++;
      last.set(h.channel, h.cursor);
    }
  }
  assert.equal(reordered, 0, 'per-channel order holds');
  // Duplicates across processes: only from a SIGKILLed process, a suffix of what it handled.
  let duplicates = 0;
  for (const [run, list] of byRun) {
    const later = new Set(handled.filter((h) => h.run > run).map((h) => h.payload));
    const again = list.filter((h) => later.has(h.payload));
    if (again.length === 0) continue;
    assert.ok(consumers.killed.has(run), `duplicates only after a SIGKILL (run ${run})`);
    const from = list.indexOf(again[0] as Handled);
    assert.equal(again.length, list.length - from, 'the re-handled ones are the last handled');
    assert.ok(
      again.length <= MAX_UNSTORED,
      `${again.length} duplicates after the kill of run ${run} (handled ${list.length}; stderr: ${consumers.stderr.slice(-1500)})`,
    );
    duplicates += again.length;
  }
  process.stdout.write(
    `durable faults: ${journal.length} committed, ${state.rolledBack.size} rolled back, ` +
      `${handled.length} handled in ${consumers.run} processes, lost 0, reordered 0, ` +
      `duplicated ${duplicates} (after ${consumers.killed.size} SIGKILLs)\n`,
  );
});
