/**
 * SSE bridge benchmark (issue 15 item 8), self-contained:
 *
 *   DATABASE_URL=postgres://… node --import tsx bench/sse.ts [--clients 1000,10000] [--rounds 3]
 *        [--seconds 10] [--deliveries 20000]
 *
 * For each client count and round, two servers are measured, each in its own process:
 *   bridge  createListener + createSseHandler (this library)
 *   floor   a minimal hand-written fan-out: one pg.Client LISTEN, JSON.stringify once per
 *           notification, `res.write(frame)` to every open node:http response
 * Both servers run at once, each with its own N clients (raw HTTP/1.1 sockets in a child
 * process), and get the same notifications: their CPU figures come from the same seconds of a
 * shared machine. Once the clients are idle, each server's RSS and heap per client are taken
 * (after a forced GC), and its backends are counted in pg_stat_activity. Then the parent sends
 * notifications for `--seconds` at a rate giving `--deliveries` client deliveries per second
 * to each server; each payload carries its send time, taken right
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
      const memory = process.memoryUsage();
      say({ rss: memory.rss, heap: memory.heapUsed + memory.external });
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
  const listener = createListener({ connection: url, applicationName: `${APP}-bridge` });
  await listener.start();
  const sse = createSseHandler(listener, { channels: [CHANNEL], maxClients: 100_000 });
  await listen(http.createServer(sse));
}

async function serverFloor(): Promise<void> {
  const client = new pg.Client({ connectionString: url, application_name: `${APP}-floor` });
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
  /** Lines that arrived before anyone waited for them. */
  #lines: Record<string, number>[] = [];
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
      const value = JSON.parse(line) as Record<string, number>;
      const waiter = this.#waiting.shift();
      if (waiter === undefined) this.#lines.push(value);
      else waiter.resolve(value);
    });
    this.proc.on('exit', (code, signal) => {
      this.#exited = new Error(`${args[0]} exited (${code ?? signal})`);
      for (const w of this.#waiting.splice(0)) w.reject(this.#exited);
    });
  }
  next(): Promise<Record<string, number>> {
    const line = this.#lines.shift();
    if (line !== undefined) return Promise.resolve(line);
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

const perClientKb = (after = 0, before = 0, n = 1): number =>
  Math.round((after - before) / n / 102.4) / 10;

/** Opens one stream, waits for its first bytes, and closes it. */
function warmUp(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('data', () => {
      socket.destroy();
      resolve();
    });
    socket.on('error', reject);
    socket.write(`GET /events?channel=${CHANNEL} HTTP/1.1\r\nHost: b\r\n\r\n`);
  });
}

interface Result {
  mode: string;
  clients: number;
  backends: number;
  rssPerClientKb: number;
  /** V8 heap used + external (Buffers) per client: what RSS is made of, without the allocator's slack. */
  heapPerClientKb: number;
  events: number;
  delivered: number;
  cpuUsPerDelivery: number;
  p50Ms: number;
  p99Ms: number;
}

const MODES = ['bridge', 'floor'] as const;
type Mode = (typeof MODES)[number];

/**
 * Both servers at once, each with its own N clients, fed by the same notifications: the two
 * CPU figures come from the same seconds of a shared machine, so their ratio holds even when
 * the machine's load moves the absolute figures.
 */
async function measurePair(n: number, seconds: number, perSecond: number): Promise<Result[]> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  const servers = new Map<Mode, Child>(MODES.map((m) => [m, new Child([`server-${m}`], true)]));
  const crowds = new Map<Mode, Child>();
  try {
    const rate = Math.max(1, Math.round(perSecond / n));
    const events = rate * seconds;
    const before = new Map<Mode, Record<string, number>>();
    for (const mode of MODES) {
      const server = servers.get(mode) as Child;
      const { port } = await server.next();
      // One client first, so code loaded on first use (URL, Headers) is not counted per client.
      await warmUp(Number(port));
      await new Promise((r) => setTimeout(r, 300));
      before.set(mode, await server.ask('rss'));
      const crowd = new Child([
        'clients',
        '--n',
        `${n}`,
        '--port',
        `${port}`,
        '--capacity',
        `${events * n}`,
      ]);
      crowds.set(mode, crowd);
      const { connected } = await crowd.next();
      if (connected !== n) throw new Error(`${mode}: only ${connected} of ${n} clients connected`);
    }
    await new Promise((r) => setTimeout(r, 2000));
    const after = new Map<Mode, Record<string, number>>();
    for (const mode of MODES) after.set(mode, await (servers.get(mode) as Child).ask('rss'));
    const backends = new Map<Mode, number>();
    for (const mode of MODES) {
      const { rows } = await admin.query<{ n: string }>(
        'select count(*) as n from pg_stat_activity where application_name = $1',
        [`${APP}-${mode}`],
      );
      backends.set(mode, Number(rows[0]?.n));
    }
    for (const server of servers.values()) await server.ask('cpu-start');
    const sender = new pg.Client({ connectionString: url });
    await sender.connect();
    const started = now();
    for (let i = 0; i < events; i++) {
      const wait = started + (i * 1000) / rate - now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await sender.query('select pg_notify($1, $2)', [CHANNEL, `{"t":${now()},"i":${i}}`]);
    }
    await sender.end();
    const deadline = now() + 60_000;
    const cpu = new Map<Mode, number>();
    while (cpu.size < MODES.length) {
      for (const mode of MODES) {
        if (cpu.has(mode)) continue;
        const { received = 0 } = await (crowds.get(mode) as Child).ask('count');
        if (received >= events * n || now() > deadline) {
          cpu.set(mode, (await (servers.get(mode) as Child).ask('cpu-end')).cpuUs ?? 0);
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const results: Result[] = [];
    for (const mode of MODES) {
      const report = await (crowds.get(mode) as Child).ask('report');
      const delivered = report.received ?? 0;
      results.push({
        mode,
        clients: n,
        backends: backends.get(mode) ?? 0,
        rssPerClientKb: perClientKb(after.get(mode)?.rss, before.get(mode)?.rss, n),
        heapPerClientKb: perClientKb(after.get(mode)?.heap, before.get(mode)?.heap, n),
        events,
        delivered,
        cpuUsPerDelivery: Math.round(((cpu.get(mode) ?? 0) / delivered) * 100) / 100,
        p50Ms: Math.round((report.p50 ?? 0) * 10) / 10,
        p99Ms: Math.round((report.p99 ?? 0) * 10) / 10,
      });
    }
    return results;
  } finally {
    for (const child of [...crowds.values(), ...servers.values()]) child.kill();
    await admin.end();
  }
}

async function main(): Promise<void> {
  const sizes = arg('clients', '1000,10000').split(',').map(Number);
  const rounds = Number(arg('rounds', '3'));
  const seconds = Number(arg('seconds', '10'));
  const perSecond = Number(arg('deliveries', '20000'));
  const results: Result[] = [];
  const ratios: { clients: number; round: number; ratio: number }[] = [];
  for (const n of sizes) {
    for (let round = 1; round <= rounds; round++) {
      const pair = await measurePair(n, seconds, perSecond);
      for (const result of pair) say(result);
      results.push(...pair);
      const [bridge, floor] = pair;
      const ratio =
        Math.round(((bridge?.cpuUsPerDelivery ?? 0) / (floor?.cpuUsPerDelivery ?? 1)) * 100) / 100;
      ratios.push({ clients: n, round, ratio });
      say({ clients: n, round, cpuRatioBridgeOverFloor: ratio });
    }
  }
  console.log(
    '\nmode    clients  backends  RSS/idle client  heap/idle client  events  delivered  CPU µs/delivery  p50 ms  p99 ms',
  );
  for (const r of results) {
    console.log(
      [
        r.mode.padEnd(7),
        `${r.clients}`.padStart(7),
        `${r.backends}`.padStart(8),
        `${r.rssPerClientKb} KB`.padStart(15),
        `${r.heapPerClientKb} KB`.padStart(16),
        `${r.events}`.padStart(6),
        `${r.delivered}`.padStart(9),
        `${r.cpuUsPerDelivery}`.padStart(15),
        `${r.p50Ms}`.padStart(6),
        `${r.p99Ms}`.padStart(6),
      ].join('  '),
    );
  }
  for (const n of sizes) {
    const mine = ratios
      .filter((r) => r.clients === n)
      .map((r) => r.ratio)
      .sort((a, b) => a - b);
    console.log(
      `CPU bridge/floor at ${n} clients: median ${mine[Math.floor(mine.length / 2)]} (rounds: ${mine.join(', ')}; target <= 1.2)`,
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
