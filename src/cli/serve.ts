/**
 * `pgnotify serve`: the browser bridge on its own HTTP server. `/events` is the SSE bridge,
 * `/` the live inspector page, `/status` the listener's state and the bridge's stats as JSON
 * and `POST /notify` sends a test notification (with `--durable`, a durable message in the
 * `--schema` journal). With a token, everything but the page itself needs it
 * (`Authorization: Bearer <token>` or `?token=`, which the page forwards).
 */
import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Command } from 'commander';
import {
  createListener,
  createNotifier,
  ErrorCode,
  type Notifier,
  PgNotifyError,
} from '../index.js';
import { DEFAULT_SCHEMA } from '../journal-sql.js';
import { createSseHandler, type SseHandler, type SseRequest } from '../sse.js';
import {
  CONNECTION_HELP,
  connectionFrom,
  ExitCode,
  integer,
  note,
  onInterrupt,
  reportFailure,
} from './common.js';
import { formatError, formatGap } from './format.js';
import { INSPECTOR_HTML } from './inspector.js';

/** The options of `pgnotify serve`, as commander parses them. */
export interface ServeOptions {
  port: number;
  host: string;
  channel?: string[];
  durable?: boolean;
  /** The durable journal's schema (with --durable). */
  schema?: string;
  token?: string;
}

const MAX_BODY_BYTES = 16 * 1024;

/** Adds `serve` to the `pgnotify` program. */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve the browser bridge (SSE at /events) and a live inspector page at /')
    .option('-p, --port <port>', 'TCP port (0: any free port)', integer(0), 8080)
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option(
      '-c, --channel <name>',
      'a channel clients may use (repeatable; default: any channel)',
      (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
    )
    .option(
      '--durable',
      'the channels are durable: events carry id: cursors and resume, /notify writes durably',
    )
    .option('--schema <name>', `with --durable: the journal's schema (default ${DEFAULT_SCHEMA})`)
    .option(
      '--token <token>',
      'require this bearer token (default: PGNOTIFY_TOKEN; none: no check)',
    )
    .addHelpText(
      'after',
      `
Routes:
  GET  /                  the inspector: a tail, per-channel rates, gaps, connection state,
                          and a form to send a test notification (open /?token=T&channel=C)
  GET  /events?channel=C  the SSE bridge (repeat channel=; Last-Event-ID or ?after= resumes)
  GET  /status            the listener's state and the bridge's stats as JSON
  POST /notify            {"channel","payload"}: sends a notification
With a token, all but / need "Authorization: Bearer <token>" or ?token=<token>.
${CONNECTION_HELP}

Examples:
  pgnotify serve --channel orders --token s3cret
  pgnotify serve --durable --schema app_events --channel orders
  curl -N 'http://127.0.0.1:8080/events?channel=orders&token=s3cret'`,
    )
    .action(async (options: ServeOptions, command: Command) => {
      process.exitCode = await serve(options, connectionFrom(command));
    });
}

/** Runs the server until a signal or a failure; returns the exit code. */
export async function serve(
  options: ServeOptions,
  connection: string | undefined,
): Promise<number> {
  const token = options.token ?? process.env.PGNOTIFY_TOKEN ?? '';
  const allowed = options.channel;
  const durable = options.durable === true;
  const { schema } = options;
  if (schema !== undefined && !durable) {
    note('--schema needs --durable');
    return ExitCode.USAGE;
  }
  const listener = createListener({
    ...(connection === undefined ? {} : { connection }),
    applicationName: 'pgnotify serve',
    onError: (error) => process.stderr.write(`${formatError(error)}\n`),
  });
  listener.on('gap', (gap) => note(formatGap(gap)));
  const tokenOk = (headers: Headers, url: URL): boolean => {
    if (token === '') return true;
    const header = headers.get('authorization') ?? '';
    const given = header.startsWith('Bearer ')
      ? header.slice(7)
      : (url.searchParams.get('token') ?? '');
    const a = Buffer.from(given);
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  };
  const channelOk = (channel: string): boolean =>
    allowed === undefined || allowed.includes(channel);
  let sse: SseHandler;
  let notifier: Notifier;
  try {
    sse = createSseHandler(listener, {
      path: '/events',
      channels: channelOk,
      authorize: (request: SseRequest) =>
        tokenOk(request.headers, request.url) || { status: 401, reason: 'missing or wrong token' },
      durable,
      ...(schema === undefined ? {} : { schema }),
    });
    notifier = createNotifier({
      ...(connection === undefined ? {} : { connection }),
      ...(schema === undefined ? {} : { schema }),
    });
  } catch (error) {
    return reportFailure(error); // a bad --schema name: exit 2
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/events') return sse(req, res);
    if (url.pathname === '/' && req.method === 'GET') {
      res.writeHead(200, {
        'Content-Type': 'text/html; charset=utf-8',
        'Cache-Control': 'no-store',
        'Content-Security-Policy':
          "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
      });
      res.end(INSPECTOR_HTML);
      return;
    }
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (typeof value === 'string') headers.set(name, value);
    }
    const known = url.pathname === '/status' || url.pathname === '/notify';
    if (known && !tokenOk(headers, url))
      return text(res, 401, 'missing or wrong token', { 'WWW-Authenticate': 'Bearer' });
    if (url.pathname === '/status' && req.method === 'GET') {
      const stats = listener.stats();
      const bridge = sse.stats();
      return json(res, 200, {
        state: stats.state,
        pid: stats.pid ?? null,
        reconnects: stats.reconnects,
        channels: allowed ?? [],
        durable,
        schema: durable ? (schema ?? DEFAULT_SCHEMA) : null,
        clients: bridge.clients,
        liveChannels: bridge.channels,
        events: bridge.events,
        slowClients: bridge.slowClients,
        pausedClients: bridge.pausedClients,
      });
    }
    if (url.pathname === '/notify' && req.method === 'POST') {
      void sendTest(req, res);
      return;
    }
    text(res, known ? 405 : 404, known ? 'method not allowed' : 'not found');
  });

  async function sendTest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let body = '';
    try {
      for await (const chunk of req) {
        body += String(chunk);
        if (body.length > MAX_BODY_BYTES) return text(res, 413, 'body too large');
      }
      const { channel, payload } = JSON.parse(body) as { channel?: unknown; payload?: unknown };
      if (typeof channel !== 'string')
        return text(res, 400, 'expected {"channel": string, "payload": …}');
      if (!channelOk(channel)) return text(res, 403, 'channel not allowed');
      // Durable streams read the journal only: a plain NOTIFY would never reach them.
      await notifier.notify(channel, payload ?? '', { durable });
      json(res, 202, { ok: true });
    } catch (error) {
      if (error instanceof SyntaxError) return text(res, 400, `invalid JSON: ${error.message}`);
      const usage =
        error instanceof PgNotifyError &&
        error.code !== ErrorCode.NOTIFY_FAILED &&
        error.code !== ErrorCode.SCHEMA_MISSING;
      text(res, usage ? 400 : 502, error instanceof Error ? error.message : String(error));
    }
  }

  let finish!: (code: number) => void;
  const finished = new Promise<number>((resolve) => (finish = resolve));
  const uninstall = onInterrupt(finish);
  try {
    await listener.start();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    note(
      `serving http://${host}:${port}/ (events at /events${token === '' ? ', no token' : ', token required'})`,
    );
    void listener.closed.then(() => {
      if (listener.state === 'failed') finish(ExitCode.CONNECTION);
    });
    return await finished;
  } catch (error) {
    return reportFailure(error);
  } finally {
    uninstall();
    await sse.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await Promise.allSettled([notifier.close(), listener.stop()]);
  }
}

function text(
  res: http.ServerResponse,
  status: number,
  body: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(`${body}\n`);
}

function json(res: http.ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify(value));
}
