/**
 * The bridge in a real browser: Debian's headless Chromium driven by puppeteer-core. An
 * EventSource receives notifications, reconnects after the server drops its stream (a plain
 * channel then gets `event: gap`), and the inspector page of `pgnotify serve` shows a
 * notification sent through its own form.
 *
 * Without /usr/bin/chromium (or PGNOTIFY_CHROMIUM), every test is skipped with a visible SKIP
 * line saying why: never a silent pass. PGNOTIFY_SCREENSHOT=path saves the inspector's picture.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { createListener, type Listener } from '../src/index.js';
import { installSchema } from '../src/journal.js';
import { appendDurableBatch } from '../src/journal-write.js';
import { createSseHandler, type SseHandler } from '../src/sse.js';
import { adminClient, databaseUrl, uniqueChannel, waitFor } from './helpers/db.js';

const CHROMIUM = process.env.PGNOTIFY_CHROMIUM ?? '/usr/bin/chromium';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const skip = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium), or set PGNOTIFY_CHROMIUM`;
if (skip !== false) process.stdout.write(`SKIP test/sse-browser.test.ts: ${skip}\n`);

let browser: Browser | undefined;
let profile = '';
let admin: pg.Client;

before(async () => {
  if (skip !== false) return;
  admin = await adminClient();
  profile = mkdtempSync(path.join(tmpdir(), 'pgnotify-chromium-'));
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profile,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
});

after(async () => {
  await browser?.close();
  await admin?.end();
  if (profile !== '') rmSync(profile, { recursive: true, force: true });
});

async function notify(channel: string, payload: string): Promise<void> {
  await admin.query('select pg_notify($1, $2)', [channel, payload]);
}

interface Site {
  base: string;
  listener: Listener;
  sse: SseHandler;
  sockets: Set<net.Socket>;
  /** While set, new requests wait (a reconnect is held back until it is resolved). */
  hold: Promise<void> | undefined;
  close(): Promise<void>;
}

/** A listener, the bridge at /events and an empty page at / (same origin: no CORS). */
async function startSite(channel: string, durable = false): Promise<Site> {
  const listener = createListener({ connection: databaseUrl() });
  await listener.start();
  const sse = createSseHandler(listener, {
    channels: [channel],
    path: '/events',
    retryMs: 200,
    durable,
  });
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    if (req.url === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html' }).end('<!doctype html><title>t</title>');
    } else if (site.hold !== undefined) void site.hold.then(() => sse(req, res));
    else sse(req, res);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const site: Site = {
    base: `http://127.0.0.1:${port}`,
    listener,
    sse,
    sockets,
    hold: undefined,
    async close() {
      await sse.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await listener.stop();
    },
  };
  return site;
}

type Seen = { type: string; data: string; lastEventId: string }[];

/**
 * Opens an EventSource in the page that records every message, gap and end event. Page code is
 * passed as strings: tsx's compiled functions reference helpers the page does not have.
 */
async function openEventSource(page: Page, url: string): Promise<void> {
  await page.evaluate(`(() => {
    window.seen = [];
    window.opens = 0;
    const source = new EventSource(${JSON.stringify(url)});
    source.onopen = () => window.opens++;
    const record = (e) => window.seen.push({ type: e.type, data: e.data, lastEventId: e.lastEventId });
    source.onmessage = record;
    source.addEventListener('gap', record);
    source.addEventListener('end', record);
  })()`);
  await page.waitForFunction('window.opens === 1');
}

const seen = (page: Page): Promise<Seen> => page.evaluate('window.seen') as Promise<Seen>;

describe('in Chromium', { skip }, () => {
  test('an EventSource receives notifications as JSON events', async () => {
    const ch = uniqueChannel('browser');
    const site = await startSite(ch);
    const page = await (browser as Browser).newPage();
    try {
      await page.goto(`${site.base}/`);
      await openEventSource(page, `/events?channel=${encodeURIComponent(ch)}`);
      await notify(ch, '{"order":1}');
      await notify(ch, 'text ✓');
      await page.waitForFunction('window.seen.length >= 2');
      const [first, second] = await seen(page);
      assert.equal(first?.type, 'message');
      const n = JSON.parse(first?.data ?? '');
      assert.equal(n.channel, ch);
      assert.deepEqual(n.payload, { order: 1 });
      assert.equal(JSON.parse(second?.data ?? '').payload, 'text ✓');
      assert.match(first?.lastEventId ?? '', /^live-\d+$/, 'the opening id reached EventSource');
    } finally {
      await page.close();
      await site.close();
    }
  });

  test('after the server drops the stream, the browser reconnects and gets a resume gap', async () => {
    const ch = uniqueChannel('reconnect');
    const site = await startSite(ch);
    const page = await (browser as Browser).newPage();
    try {
      await page.goto(`${site.base}/`);
      await openEventSource(page, `/events?channel=${encodeURIComponent(ch)}`);
      await waitFor(() => site.sse.stats().clients === 1);
      for (const socket of site.sockets) socket.destroy();
      await page.waitForFunction('window.opens === 2', { timeout: 10_000 });
      await page.waitForFunction('window.seen.length >= 1');
      const [gap] = await seen(page);
      assert.equal(gap?.type, 'gap');
      const data = JSON.parse(gap?.data ?? '');
      assert.equal(data.reason, 'resume');
      assert.deepEqual(data.channels, [ch]);
      assert.match(data.after, /^live-\d+$/, 'the browser sent Last-Event-ID');
      await notify(ch, 'after reconnect');
      await page.waitForFunction('window.seen.length >= 2');
      assert.equal(JSON.parse((await seen(page))[1]?.data ?? '').payload, 'after reconnect');
    } finally {
      await page.close();
      await site.close();
    }
  });

  test('durable: after the server drops the stream, the browser resumes with Last-Event-ID and gets exactly the missed events', async () => {
    const ch = uniqueChannel('bdurable');
    await installSchema({ client: admin });
    const site = await startSite(ch, true);
    const page = await (browser as Browser).newPage();
    const write = (payloads: string[]) => appendDurableBatch(admin, ch, payloads);
    try {
      await page.goto(`${site.base}/`);
      await openEventSource(page, `/events?channel=${encodeURIComponent(ch)}`);
      await write(['1', '2']);
      await page.waitForFunction('window.seen.length >= 2');
      let release = (): void => undefined;
      site.hold = new Promise<void>((resolve) => {
        release = resolve;
      });
      for (const socket of site.sockets) socket.destroy();
      await waitFor(() => site.sse.stats().clients === 0);
      await write(['3', '4']); // while the browser is away
      site.hold = undefined;
      release();
      await page.waitForFunction('window.opens === 2', { timeout: 10_000 });
      await write(['5']);
      await page.waitForFunction('window.seen.length >= 5', { timeout: 10_000 });
      const events = await seen(page);
      assert.deepEqual(
        events.map((e) => [e.type, JSON.parse(e.data).payload]),
        [1, 2, 3, 4, 5].map((n) => ['message', n]),
        'every event once, in order, no gap',
      );
      const ids = events.map((e) => e.lastEventId);
      for (const id of ids) assert.match(id, /^\d{19}-\d{19}$/);
      assert.deepEqual([...ids].sort(), ids);
    } finally {
      await page.close();
      await site.close();
    }
  });

  test('the inspector page of pgnotify serve shows a notification sent through its form', async () => {
    const ch = uniqueChannel('inspector');
    const serve = await startServe(['--channel', ch, '--token', 't0ken']);
    const page = await (browser as Browser).newPage();
    try {
      await page.setViewport({ width: 1100, height: 640 });
      await page.goto(`${serve.base}/?token=t0ken&channel=${encodeURIComponent(ch)}`);
      await page.waitForFunction(`document.getElementById('stream').textContent === 'open'`);
      await page.waitForFunction(`document.getElementById('listener').textContent === 'listening'`);
      await notify(ch, '{"order":41,"status":"paid"}');
      await page.type('#send-payload', '{"order":42,"status":"shipped"}');
      await page.click('#send-button');
      await page.waitForFunction(`document.getElementById('result').textContent === 'sent'`);
      await page.waitForFunction(
        `document.getElementById('tail').textContent.includes('"order":42')`,
      );
      const rows = (await page.evaluate(
        `[...document.querySelectorAll('#tail tr')].map((tr) => tr.textContent)`,
      )) as string[];
      assert.equal(rows.length, 2);
      assert.ok(rows[0]?.includes(ch) && rows[0].includes('"status":"shipped"'), rows[0]);
      const rate = (await page.evaluate(`document.getElementById('rates').textContent`)) as string;
      assert.ok(rate.includes(`${ch}2`), rate);
      const screenshot = process.env.PGNOTIFY_SCREENSHOT;
      if (screenshot !== undefined && screenshot !== '') {
        await page.screenshot({ path: path.resolve(ROOT, screenshot) as `${string}.png` });
      }
    } finally {
      await page.close();
      await serve.stop();
    }
  });
});

/** Starts `pgnotify serve --port 0 …args` and resolves with its address once it serves. */
async function startServe(args: string[]): Promise<{ base: string; stop(): Promise<void> }> {
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: databaseUrl() };
  delete env.NODE_TEST_CONTEXT;
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--port', '0', ...args],
    { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const base = await waitFor(() => /serving (http:\/\/\S+)\//.exec(stderr)?.[1], {
    timeoutMs: 15_000,
    message: `pgnotify serve to start; stderr: ${stderr}`,
  });
  return {
    base,
    async stop() {
      child.kill('SIGTERM');
      const code = await exited;
      assert.equal(code, 143, `pgnotify serve exited with ${code}; stderr: ${stderr}`);
    },
  };
}
