/**
 * `pgnotify/sse`: a browser bridge. Server-Sent Events for any Node HTTP server from one
 * listener (one PostgreSQL backend) whatever the number of clients.
 *
 * This module is the handler: admission (sse-request.ts), one SseClient per stream
 * (sse-client.ts), the live per-channel fan-out (sse-fanout.ts: one listener subscription per
 * channel, each notification encoded once), durable channels through a subscription per
 * client (`openDurable` in sse-durable.ts), heartbeats, stats and shutdown. A stream whose
 * subscription ends under it (failed, or unsubscribed by someone else) is ended with
 * `reason: 'error'` instead of being left open with nothing more to come.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode, toError } from './errors.js';
import type { Gap, Listener, ListenerState, Subscription } from './index.js';
import { PgNotifyError } from './index.js';
import { Frame, NodeSink, type Sink, SseClient, WebSink } from './sse-client.js';
import { openDurable } from './sse-durable.js';
import { Fanout, sendGap } from './sse-fanout.js';
import { resolveSseOptions, type SseOptions } from './sse-options.js';
import {
  type Admitted,
  admit,
  type Refusal,
  refusalResponse,
  requestUrl,
  sseRequest,
  subscribeRefusal,
  toHeaders,
  writeRefusal,
} from './sse-request.js';
import {
  gapFrame,
  HEARTBEAT,
  isLiveMarker,
  liveMarker,
  notificationFrame,
  openFrame,
} from './sse-wire.js';

export type { SseOptions } from './sse-options.js';
export type { SseAuthorize, SseDenial, SseRequest } from './sse-request.js';
export type { SseEnd, SseEndReason, SseGap, SseGapReason } from './sse-wire.js';

/** Counters of a handler. */
export interface SseStats {
  /** Streams open now. */
  readonly clients: number;
  /** Channels with at least one live client (one listener subscription each). */
  readonly channels: number;
  /** Notification events written to clients (one notification to three clients counts three). */
  readonly events: number;
  /**
   * Streams ended because the client did not read fast enough: a plain stream past its queue
   * limits, a durable one that read nothing for `stallTimeoutMs` while its replay waited.
   */
  readonly slowClients: number;
  /**
   * Durable streams waiting for their client to read now (their journal read is paused: a
   * replay goes at the client's pace).
   */
  readonly pausedClients: number;
}

/**
 * The bridge: call it as a node:http / Express / Connect handler, or use `fetch` for
 * `Request → Response` frameworks (Hono, Next.js route handlers, Bun, Deno).
 */
export interface SseHandler {
  /** node:http form. With `path` set, other paths call `next()` when given, else get 404. */
  (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void): void;
  /** Fetch form: a streaming `Response` (or a plain-text refusal). */
  fetch(request: Request): Promise<Response>;
  /**
   * Ends every stream with `event: end` (`reason: 'shutdown'`, a jittered `retry:` so clients
   * reconnect spread out, to another instance) and removes every subscription; later requests
   * get 503. Safe twice. Does not stop the listener.
   */
  close(): Promise<void>;
  /** Counters for health checks. */
  stats(): SseStats;
  /** `await using sse = createSseHandler(…)` closes it at the end of the block. */
  [Symbol.asyncDispose](): Promise<void>;
}

const STREAM_HEADERS = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'no-cache',
  'X-Accel-Buffering': 'no',
  Connection: 'keep-alive',
} as const;

/** The answer to a request whose stream was ended (shutdown, listener stopped) while opening. */
const GONE: Refusal = { status: 503, reason: 'shutting down', headers: { 'Retry-After': '1' } };

const heartbeatFrame = Frame.of(HEARTBEAT);

let handlers = 0;

/**
 * Serves `listener`'s notifications as Server-Sent Events: `GET /events?channel=a&channel=b`.
 * Each notification is one event with `data: {"channel","payload","pid","receivedAt"}`; a loss
 * is `event: gap`; a stream the server ends gets `event: end`. Start the listener yourself.
 * Throws `PGNOTIFY_INVALID_OPTION` on a bad option.
 * @example
 * const listener = createListener({ connection })
 * await listener.start()
 * const sse = createSseHandler(listener, { channels: ['orders'], path: '/events' })
 * http.createServer(sse).listen(3000)             // or app.get('/events', sse) in Express
 * // Hono: app.get('/events', (c) => sse.fetch(c.req.raw))
 */
export function createSseHandler(listener: Listener, options: SseOptions = {}): SseHandler {
  const { heartbeatMs, retryMs, maxClients, limits, config, path, durable, schema, onError } =
    resolveSseOptions(options);
  const isDurable = (channel: string): boolean =>
    durable === true || (Array.isArray(durable) && durable.includes(channel));
  const idPrefix = `sse${++handlers}:`;

  const clients = new Set<SseClient>();
  const durableSubs = new Map<SseClient, Promise<Subscription<unknown> | undefined>>();
  let opening = 0;
  /** Notification events written by durable subscriptions; the fan-out counts its own. */
  let durableEvents = 0;
  let slowClients = 0;
  let heartbeat: NodeJS.Timeout | undefined;
  let closed = false;

  const report = (error: unknown): void => {
    try {
      onError(toError(error));
    } catch {
      // A throwing onError must not take a stream or the process down.
    }
  };

  /** A jittered `retry:` (shutdown, errors): many clients reconnect spread over `retryMs`. */
  const jittered = (): number => retryMs + Math.floor(Math.random() * retryMs);

  /**
   * Ends a stream whose subscription ended under it while the listener runs (it failed for
   * good, or someone else unsubscribed it): `reason: 'error'` with the error's code
   * (`PGNOTIFY_CLOSED` for an unsubscribe) and a jittered retry.
   */
  function subscriptionEnded(client: SseClient, error: unknown): void {
    const failed = error !== undefined;
    client.end(
      'error',
      failed
        ? "the stream's subscription failed: reconnect later"
        : "the stream's subscription was ended on the server: reconnect",
      jittered(),
      !failed ? ErrorCode.CLOSED : error instanceof PgNotifyError ? error.code : undefined,
    );
  }

  const fanout = new Fanout(listener, idPrefix, report, (ended, error) => {
    if (error !== undefined) report(error);
    for (const client of ended) subscriptionEnded(client, error);
  });

  function gone(client: SseClient, reason: string): void {
    clients.delete(client);
    if (reason === 'slow-client') slowClients++;
    for (const channel of client.live) fanout.leave(channel, client);
    const sub = durableSubs.get(client);
    if (sub !== undefined) {
      durableSubs.delete(client);
      void sub.then((s) => s?.unsubscribe()).catch(report);
    }
    if (clients.size === 0 && heartbeat !== undefined) {
      clearInterval(heartbeat);
      heartbeat = undefined;
    }
  }

  const onGap = (gap: Gap): void => sendGap(gap, clients);
  function onState(state: ListenerState): void {
    if (state !== 'stopped' && state !== 'failed') return;
    for (const client of [...clients]) client.end('listener-stopped', `the listener is ${state}`);
  }
  listener.on('gap', onGap);
  listener.on('state', onState);

  /**
   * Registers a client at once (so a peer that leaves meanwhile is cleaned up), joins its
   * channels, and opens the stream once they are listened to (`opened`: false when the client
   * left or was ended before that: no stream was started).
   */
  function attach(sink: Sink, admitted: Admitted): { client: SseClient; opened: Promise<boolean> } {
    const wanted = admitted.channels;
    const after = admitted.lastEventId;
    const durableWanted = wanted.filter(isDurable);
    let client!: SseClient;
    const pending =
      durableWanted.length === 0
        ? undefined
        : openDurable(
            listener,
            durableWanted,
            isLiveMarker(after) ? undefined : after,
            {
              deliver: (n) => {
                durableEvents++;
                return client.sendPaced(Frame.of(notificationFrame(n)));
              },
              get gone() {
                return client.gone;
              },
              gap: (gap) =>
                client.send(
                  gapFrame({
                    reason: 'expired',
                    channels:
                      gap.channels ?? (gap.channel === undefined ? durableWanted : [gap.channel]),
                    message: 'the journal no longer holds what this cursor missed',
                    ...(after === undefined ? {} : { after }),
                  }),
                ),
            },
            limits.maxQueuedEvents,
            schema,
          );
    // Without durable subscriptions, durable channels are served live like the rest.
    const live = pending === undefined ? wanted : wanted.filter((c) => !isDurable(c));
    client = new SseClient(sink, wanted, live, limits, gone);
    clients.add(client);
    heartbeat ??= setInterval(() => {
      for (const c of clients) c.send(heartbeatFrame);
    }, heartbeatMs);
    if (pending !== undefined) {
      durableSubs.set(
        client,
        pending.then(
          (s) => {
            // The stream stopped reading it: the client left, or it ended under the client.
            s.done.then(
              () => subscriptionEnded(client, undefined),
              (error: unknown) => {
                report(error);
                subscriptionEnded(client, error);
              },
            );
            return s.subscription;
          },
          () => undefined,
        ),
      );
    }
    const opened = (async () => {
      let cursor: string | undefined;
      try {
        await Promise.all(live.map((channel) => fanout.join(channel, client)));
        if (pending !== undefined) cursor = (await pending).cursor;
      } catch (error) {
        client.closed();
        throw error;
      }
      if (client.gone) return false;
      const marker = after === undefined && live.length > 0 ? liveMarker(Date.now()) : undefined;
      client.start({ ...STREAM_HEADERS, ...admitted.cors }, openFrame(retryMs, cursor ?? marker));
      if (after !== undefined && live.length > 0) {
        client.send(
          gapFrame({
            reason: 'resume',
            channels: live,
            message:
              'reconnected on channels that are not durable: what was sent meanwhile is lost',
            after,
          }),
        );
      }
      return true;
    })();
    return { client, opened };
  }

  /** Admission with the client limit; a slot is reserved while `authorize` runs. */
  async function decide(
    method: string,
    request: ReturnType<typeof sseRequest>,
  ): Promise<Admitted | Refusal> {
    if (closed) return GONE;
    if (method === 'GET' && clients.size + opening >= maxClients) {
      return {
        status: 503,
        reason: `too many clients (at most ${maxClients})`,
        headers: { 'Retry-After': '5' },
      };
    }
    opening++;
    let decision: Admitted | Refusal;
    try {
      decision = await admit(config, method, request, report);
    } finally {
      opening--;
    }
    // close() ran while `authorize` did: it has ended the streams it knew of, and would never
    // end this one (its heartbeat would then hold a graceful shutdown open).
    return closed ? GONE : decision;
  }

  const failure = (error: unknown): Refusal => subscribeRefusal(error, report);

  async function serveNode(
    req: IncomingMessage,
    res: ServerResponse,
    next?: (error?: unknown) => void,
  ): Promise<void> {
    const url = requestUrl(req);
    if (url === undefined) {
      writeRefusal(res, { status: 400, reason: 'bad request target', headers: {} });
      return;
    }
    if (path !== undefined && url.pathname !== path) {
      if (next !== undefined) next();
      else writeRefusal(res, { status: 404, reason: 'not found', headers: {} });
      return;
    }
    const decision = await decide(req.method ?? 'GET', sseRequest(url, toHeaders(req), req));
    if ('status' in decision) {
      writeRefusal(res, decision);
      return;
    }
    if (res.destroyed) return;
    res.socket?.setNoDelay(true);
    const { client, opened } = attach(new NodeSink(res), decision);
    res.on('close', () => client.closed());
    try {
      if (!(await opened) && !res.destroyed) writeRefusal(res, GONE);
    } catch (error) {
      writeRefusal(res, failure(error));
    }
  }

  const handler = ((
    req: IncomingMessage,
    res: ServerResponse,
    next?: (error?: unknown) => void,
  ) => {
    serveNode(req, res, next).catch((error: unknown) => {
      report(error);
      if (!res.headersSent)
        writeRefusal(res, { status: 500, reason: 'internal error', headers: {} });
      else res.destroy();
    });
  }) as SseHandler;

  handler.fetch = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    if (path !== undefined && url.pathname !== path)
      return refusalResponse({ status: 404, reason: 'not found', headers: {} });
    const decision = await decide(request.method, sseRequest(url, request.headers, request));
    if ('status' in decision) return refusalResponse(decision);
    let client: SseClient | undefined;
    const sink = new WebSink(() => client?.closed());
    const attached = attach(sink, decision);
    client = attached.client;
    const onAbort = (): void => attached.client.closed();
    request.signal.addEventListener('abort', onAbort, { once: true });
    let started: boolean;
    try {
      started = await attached.opened;
    } catch (error) {
      request.signal.removeEventListener('abort', onAbort);
      return refusalResponse(failure(error));
    }
    if (!started) return refusalResponse(GONE);
    if (request.signal.aborted) client.closed();
    return new Response(sink.stream, {
      status: 200,
      headers: { ...STREAM_HEADERS, ...decision.cors },
    });
  };

  handler.close = async (): Promise<void> => {
    if (!closed) {
      closed = true;
      listener.off('gap', onGap);
      listener.off('state', onState);
    }
    for (const client of [...clients]) {
      client.end('shutdown', 'the server is shutting down: reconnect', jittered());
    }
    await Promise.allSettled([...fanout.close(), ...durableSubs.values()]);
  };
  const countPaused = (): number => {
    let n = 0;
    for (const client of clients) if (client.paused) n++;
    return n;
  };
  handler.stats = () => ({
    clients: clients.size,
    channels: fanout.channels,
    events: fanout.events + durableEvents,
    slowClients,
    pausedClients: countPaused(),
  });
  handler[Symbol.asyncDispose] = () => handler.close();
  return handler;
}
