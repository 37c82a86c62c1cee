/**
 * SSE bridge benchmark (issue 15 item 8), self-contained:
 *
 *   DATABASE_URL=postgres://… node --import tsx bench/sse.ts [--clients 1000,10000] [--rounds 2]
 *        [--seconds 10] [--deliveries 40000]
 *
 * For each client count and round, two servers are measured in turn, each in its own process:
 *   bridge  createListener + createSseHandler (this library)
 *   floor   a minimal hand-written fan-out: one pg.Client LISTEN, JSON.stringify once per
 *           notification, `res.write(frame)` to every open node:http response
 * N clients (raw HTTP/1.1 sockets in one child process) connect to the server; once idle, the
 * server's RSS per client is taken (after a forced GC), and its backends are counted in
 * pg_stat_activity. Then the parent sends notifications for `--seconds` at a rate giving
 * `--deliveries` client deliveries per second; each payload carries its send time, taken right
 * before the autocommit `pg_notify` (≈ commit), and the clients record send → receipt for every
 * delivery (p50/p99 over all of them). The server's own CPU (user+system) over the sending
 * phase divided by deliveries is "CPU per delivered event"; bridge/floor is the ratio (target
 * ≤ 1.2×). The machine's cores are shared by server, clients and PostgreSQL.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const APP = 'pgnotify-bench-sse';
const CHANNEL = 'bench_sse';
const role = process.argv[2] ?? 'main';
const url = process.env.DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/postgres';
const now = (): number => performance.timeOrigin + performance.now();
const say = (value: unknown): boolean => process.stdout.write(`${JSON.stringify(value)}\n`);
const arg = (name: string, fallback: string): string => {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? (process.argv[at + 1] ?? fallback) : fallback;
};

/** Commands from the parent on stdin: rss (after GC), cpu-start, cpu-end. */
function serveCommands(): void {
  let cpu = process.cpuUsage();
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line === 'rss') {
      (globalThis as { gc?: () => void }).gc?.();
      say({ rss: process.memoryUsage().rss });
    } else if (line === 'cpu-start') {
      cpu = process.cpuUsage();
      say({ ok: true });
    } else if (line === 'cpu-end') {
      const used = process.cpuUsage(cpu);
      say({ cpuUs: used.user + used.system });
    }
  });
}

async function listen(server: http.Server): Promise<void> {
  await new Promise<void>((resolve) =>
    server.listen({ port: 0, host: '127.0.0.1', backlog: 8192 }, resolve),
  );
  say({ port: (server.address() as net.AddressInfo).port });
  serveCommands();
}

async function serverBridge(): Promise<void> {
  const { createListener } = await import('../src/index.js');
  const { createSseHandler } = await import('../src/sse.js');
  const listener = createListener({ connection: url, applicationName: APP });
  await listener.start();
  const sse = createSseHandler(listener, { channels: [CHANNEL], maxClients: 100_000 });
  await listen(http.createServer(sse));
}

async function serverFloor(): Promise<void> {
  const client = new pg.Client({ connectionString: url, application_name: APP });
  await client.connect();
  await client.query(`LISTEN ${CHANNEL}`);
  const open = new Set<http.ServerResponse>();
  client.on('notification', (msg) => {
    const frame = `data: ${JSON.stringify({
      channel: msg.channel,
      payload: JSON.parse(msg.payload ?? 'null'),
      pid: msg.processId,
      receivedAt: Date.now(),
    })}\n\n`;
    for (const res of open) res.write(frame);
  });
  const server = http.createServer((_req, res) => {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
    });
    res.write(':ok\n\n');
    open.add(res);
    res.on('close', () => open.delete(res));
  });
  await listen(server);
}

/** N raw sockets; each counts events and records send → receipt of every one. */
async function clients(): Promise<void> {
  const n = Number(arg('n', '1000'));
  const port = Number(arg('port', '0'));
  const capacity = Number(arg('capacity', '1000000'));
  const samples = new Float64Array(capacity);
  let received = 0;
  let opened = 0;
  const sockets: net.Socket[] = [];
  const openOne = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.setEncoding('latin1');
      let first = true;
      let carry = '';
      socket.on('data', (chunk: string) => {
        if (first) {
          first = false;
          opened++;
          resolve();
        }
        const text = carry + chunk;
        const cut = text.lastIndexOf('\n\n');
        carry = text.slice(cut + 2);
        let at = text.indexOf('"t":');
        while (at >= 0 && at < cut) {
          const t = Number(text.slice(at + 4, text.indexOf(',', at)));
          if (received < capacity) samples[received] = now() - t;
          received++;
          at = text.indexOf('"t":', at + 4);
        }
      });
      socket.on('error', reject);
      socket.write(`GET /events?channel=${CHANNEL} HTTP/1.1\r\nHost: b\r\n\r\n`);
      sockets.push(socket);
    });
  for (let i = 0; i < n; i += 250) {
    await Promise.all(Array.from({ length: Math.min(250, n - i) }, openOne));
  }
  say({ connected: opened });
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line === 'count') say({ received });
    if (line === 'report') {
      const used = samples.subarray(0, Math.min(received, capacity)).sort();
      const pick = (q: number): number =>
        used[Math.min(used.length - 1, Math.floor(q * used.length))] ?? 0;
      say({ received, p50: pick(0.5), p99: pick(0.99), max: used[used.length - 1] ?? 0 });
      for (const s of sockets) s.destroy();
      process.exit(0);
    }
  });
}

/** A child of this script with a line protocol on stdin/stdout. */
class Child {
  readonly proc: ChildProcess;
  #waiting: { resolve: (value: Record<string, number>) => void; reject: (e: Error) => void }[] = [];
  #exited: Error | undefined;
  constructor(args: string[], gc = false) {
    const script = fileURLToPath(import.meta.url);
    this.proc = spawn(
      process.execPath,
      [...(gc ? ['--expose-gc'] : []), '--import', 'tsx', script, ...args],
      {
        stdio: ['pipe', 'pipe', 'inherit'],
        env: { ...process.env, DATABASE_URL: url },
      },
    );
    createInterface({ input: this.proc.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      this.#waiting.shift()?.resolve(JSON.parse(line) as Record<string, number>);
    });
    this.proc.on('exit', (code, signal) => {
      this.#exited = new Error(`${args[0]} exited (${code ?? signal})`);
      for (const w of this.#waiting.splice(0)) w.reject(this.#exited);
    });
  }
  next(): Promise<Record<string, number>> {
    if (this.#exited !== undefined) return Promise.reject(this.#exited);
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }
  ask(command: string): Promise<Record<string, number>> {
    const answer = this.next();
    this.proc.stdin?.write(`${command}\n`);
    return answer;
  }
  kill(): void {
    this.proc.kill('SIGKILL');
  }
}

interface Result {
  mode: string;
  clients: number;
  backends: number;
  rssPerClientKb: number;
  events: number;
  delivered: number;
  cpuUsPerDelivery: number;
  p50Ms: number;
  p99Ms: number;
}

async function measure(
  mode: 'bridge' | 'floor',
  n: number,
  seconds: number,
  perSecond: number,
): Promise<Result> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  const server = new Child([`server-${mode}`], true);
  let crowd: Child | undefined;
  try {
    const { port } = await server.next();
    await new Promise((r) => setTimeout(r, 500));
    const before = (await server.ask('rss')).rss ?? 0;
    const rate = Math.max(1, Math.round(perSecond / n));
    const events = rate * seconds;
    crowd = new Child([
      'clients',
      '--n',
      String(n),
      '--port',
      String(port),
      '--capacity',
      String(events * n),
    ]);
    const { connected } = await crowd.next();
    if (connected !== n) throw new Error(`only ${connected} of ${n} clients connected`);
    await new Promise((r) => setTimeout(r, 2000));
    const after = (await server.ask('rss')).rss ?? 0;
    const backends = Number(
      (
        await admin.query(
          'select count(*) as n from pg_stat_activity where application_name = $1',
          [APP],
        )
      ).rows[0]?.n,
    );
    await server.ask('cpu-start');
    const sender = new pg.Client({ connectionString: url });
    await sender.connect();
    const started = now();
    for (let i = 0; i < events; i++) {
      const due = started + (i * 1000) / rate;
      const wait = due - now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await sender.query('select pg_notify($1, $2)', [CHANNEL, `{"t":${now()},"i":${i}}`]);
    }
    const deadline = now() + 60_000;
    for (;;) {
      const { received = 0 } = await crowd.ask('count');
      if (received >= events * n || now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const { cpuUs = 0 } = await server.ask('cpu-end');
    await sender.end();
    const report = await crowd.ask('report');
    const delivered = report.received ?? 0;
    return {
      mode,
      clients: n,
      backends,
      rssPerClientKb: Math.round((after - before) / n / 102.4) / 10,
      events,
      delivered,
      cpuUsPerDelivery: Math.round((cpuUs / delivered) * 100) / 100,
      p50Ms: Math.round((report.p50 ?? 0) * 10) / 10,
      p99Ms: Math.round((report.p99 ?? 0) * 10) / 10,
    };
  } finally {
    crowd?.kill();
    server.kill();
    await admin.end();
  }
}

async function main(): Promise<void> {
  const sizes = arg('clients', '1000,10000').split(',').map(Number);
  const rounds = Number(arg('rounds', '2'));
  const seconds = Number(arg('seconds', '10'));
  const perSecond = Number(arg('deliveries', '40000'));
  const results: Result[] = [];
  for (const n of sizes) {
    for (let round = 1; round <= rounds; round++) {
      // Alternate which goes first, so drift on a shared machine does not favour one.
      const order =
        round % 2 === 1 ? (['floor', 'bridge'] as const) : (['bridge', 'floor'] as const);
      const pair: Partial<Record<'bridge' | 'floor', Result>> = {};
      for (const mode of order) {
        const result = await measure(mode, n, seconds, perSecond);
        pair[mode] = result;
        results.push(result);
        say(result);
      }
      const ratio = (pair.bridge?.cpuUsPerDelivery ?? 0) / (pair.floor?.cpuUsPerDelivery ?? 1);
      say({ clients: n, round, cpuRatioBridgeOverFloor: Math.round(ratio * 100) / 100 });
    }
  }
  console.log(
    '\nmode    clients  backends  RSS/idle client  events  delivered  CPU µs/delivery  p50 ms  p99 ms',
  );
  for (const r of results) {
    console.log(
      `${r.mode.padEnd(7)} ${String(r.clients).padStart(7)}  ${String(r.backends).padStart(8)}  ${`${r.rssPerClientKb} KB`.padStart(15)}  ${String(r.events).padStart(6)}  ${String(r.delivered).padStart(9)}  ${String(r.cpuUsPerDelivery).padStart(15)}  ${String(r.p50Ms).padStart(6)}  ${String(r.p99Ms).padStart(6)}`,
    );
  }
}

const roles: Record<string, () => Promise<void>> = {
  main,
  'server-bridge': serverBridge,
  'server-floor': serverFloor,
  clients,
};
const run = roles[role] ?? main;
run().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
