/**
 * Who may open a stream on what: method, channel names from the query string, limits, the
 * `channels` allow-list, the `authorize` hook and CORS. Pure of I/O apart from the hook, and
 * shared by the node:http and fetch forms. Nothing is streamed before this says yes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode, shorten, toError } from './errors.js';
import { checkChannel, PgNotifyError } from './index.js';

/** The request as `authorize` sees it, the same for node:http and fetch. */
export interface SseRequest {
  /** The request URL (on node:http, resolved against `http://localhost`). */
  readonly url: URL;
  readonly headers: Headers;
  /** The original request object: node:http's `IncomingMessage` or a web `Request`. */
  readonly raw: IncomingMessage | Request;
  /** `Last-Event-ID`, else `?after=`: where a reconnecting client left off. */
  readonly lastEventId: string | undefined;
}

/** A refusal from `authorize`: a 4xx `status` and a short `reason` sent as the body. */
export interface SseDenial {
  readonly status: number;
  readonly reason: string;
}

/** See `SseOptions.authorize`. */
export type SseAuthorize = (
  request: SseRequest,
  channel: string,
) => boolean | SseDenial | Promise<boolean | SseDenial>;

/** The resolved settings admission reads. */
export interface AdmissionConfig {
  readonly channels: readonly string[] | ((channel: string) => boolean) | undefined;
  readonly authorize: SseAuthorize | undefined;
  readonly maxChannelsPerRequest: number;
  readonly cors: readonly string[] | undefined;
}

/** A plain-text answer instead of a stream. */
export interface Refusal {
  readonly status: number;
  readonly reason: string;
  readonly headers: Readonly<Record<string, string>>;
}

/** A request allowed to stream. */
export interface Admitted {
  readonly channels: readonly string[];
  readonly lastEventId: string | undefined;
  /** CORS headers to add to the stream's (empty when CORS is off or the origin is not listed). */
  readonly cors: Readonly<Record<string, string>>;
}

const MAX_EVENT_ID_LENGTH = 1024;

/** The request as `authorize` sees it. */
export function sseRequest(url: URL, headers: Headers, raw: IncomingMessage | Request): SseRequest {
  const header = headers.get('last-event-id');
  const after = header !== null && header !== '' ? header : url.searchParams.get('after');
  return { url, headers, raw, lastEventId: after === null || after === '' ? undefined : after };
}

/**
 * The URL of a node:http request, or undefined when its target is no URL path (`//[`): the
 * client's mistake, answered 400, not an internal error.
 */
export function requestUrl(req: IncomingMessage): URL | undefined {
  try {
    return new URL(req.url ?? '/', 'http://localhost');
  } catch {
    return undefined;
  }
}

/** node:http headers as web `Headers`. */
export function toHeaders(req: IncomingMessage): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else headers.append(name, value);
  }
  return headers;
}

/** CORS headers for `origin`, or none when CORS is off or the origin is not allowed. */
export function corsHeaders(
  cors: readonly string[] | undefined,
  origin: string | null,
): Record<string, string> {
  if (cors === undefined || origin === null) return {};
  if (cors.includes(origin)) {
    return {
      'Access-Control-Allow-Origin': origin,
      'Access-Control-Allow-Credentials': 'true',
      Vary: 'Origin',
    };
  }
  return cors.includes('*') ? { 'Access-Control-Allow-Origin': '*' } : {};
}

function refuse(status: number, reason: string, headers: Record<string, string> = {}): Refusal {
  return { status, reason, headers };
}

/**
 * Decides whether `request` may stream, checking in this order: method, channel names and
 * count, `Last-Event-ID`, the allow-list, then `authorize` for every channel (at once).
 * `authorize` or a `channels` predicate that throws is reported and answered 500.
 */
export async function admit(
  config: AdmissionConfig,
  method: string,
  request: SseRequest,
  onError: (error: Error) => void,
): Promise<Admitted | Refusal> {
  const cors = corsHeaders(config.cors, request.headers.get('origin'));
  if (method === 'OPTIONS' && Object.keys(cors).length > 0) {
    return refuse(204, '', {
      ...cors,
      'Access-Control-Allow-Methods': 'GET',
      'Access-Control-Allow-Headers': 'Authorization, Cache-Control, Last-Event-ID',
      'Access-Control-Max-Age': '600',
    });
  }
  if (method !== 'GET')
    return refuse(405, 'method not allowed: use GET', { Allow: 'GET', ...cors });

  const channels = [...new Set(request.url.searchParams.getAll('channel'))];
  if (channels.length === 0) return refuse(400, 'no channel: add ?channel=NAME', cors);
  if (channels.length > config.maxChannelsPerRequest) {
    return refuse(
      400,
      `too many channels: ${channels.length} (at most ${config.maxChannelsPerRequest} per request)`,
      cors,
    );
  }
  for (const channel of channels) {
    try {
      checkChannel(channel);
    } catch (error) {
      const why = error instanceof PgNotifyError ? error.message : String(error);
      return refuse(400, `invalid channel: ${why}`, cors);
    }
  }
  const after = request.lastEventId;
  if (after !== undefined && (after.length > MAX_EVENT_ID_LENGTH || /[\r\n\0]/.test(after))) {
    return refuse(400, 'invalid Last-Event-ID (or ?after=)', cors);
  }

  try {
    const allowed = config.channels;
    if (allowed === undefined && config.authorize === undefined) {
      return refuse(403, 'no channel is allowed (configure channels or authorize)', cors);
    }
    for (const channel of channels) {
      const ok =
        allowed === undefined ||
        (typeof allowed === 'function' ? allowed(channel) === true : allowed.includes(channel));
      if (!ok) return refuse(403, `channel not allowed: ${JSON.stringify(shorten(channel))}`, cors);
    }
    const authorize = config.authorize;
    if (authorize !== undefined) {
      const answers = await Promise.all(channels.map((channel) => authorize(request, channel)));
      for (const [i, answer] of answers.entries()) {
        if (answer === true) continue;
        const channel = JSON.stringify(shorten(channels[i] ?? ''));
        if (typeof answer === 'object' && answer !== null) {
          const status =
            Number.isInteger(answer.status) && answer.status >= 400 && answer.status < 500;
          const code = status ? answer.status : 403;
          const reason =
            typeof answer.reason === 'string' && answer.reason !== ''
              ? answer.reason
              : `not authorized for channel ${channel}`;
          return refuse(
            code,
            shorten(reason, 200),
            code === 401 ? { 'WWW-Authenticate': 'Bearer', ...cors } : cors,
          );
        }
        return refuse(403, `not authorized for channel ${channel}`, cors);
      }
    }
  } catch (error) {
    onError(toError(error));
    return refuse(500, 'authorization failed', cors);
  }
  return { channels, lastEventId: after, cors };
}

/** Writes a refusal as plain text (or drops a response whose headers already went). */
export function writeRefusal(res: ServerResponse, refusal: Refusal): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = refusal.status === 204 ? '' : `${refusal.reason}\n`;
  res.writeHead(refusal.status, {
    ...refusal.headers,
    'Content-Type': 'text/plain; charset=utf-8',
    'Cache-Control': 'no-store',
  });
  res.end(body);
}

/** A refusal as a plain-text web `Response`. */
export function refusalResponse(refusal: Refusal): Response {
  return new Response(refusal.status === 204 ? null : `${refusal.reason}\n`, {
    status: refusal.status,
    headers: {
      ...refusal.headers,
      'Content-Type': 'text/plain; charset=utf-8',
      'Cache-Control': 'no-store',
    },
  });
}

/**
 * Codes of a subscribe refused for what the client sent (a malformed or foreign durable
 * cursor): a 400 with the message. `PGNOTIFY_INVALID_CURSOR` comes with durable subscriptions.
 */
const BAD_REQUEST = new Set<string>([ErrorCode.INVALID_OPTION, 'PGNOTIFY_INVALID_CURSOR']);

/**
 * The answer when subscribing a stream failed: 503 for a stopped listener, 400 for a refused
 * cursor, else 500 (that error is reported).
 */
export function subscribeRefusal(error: unknown, report: (error: unknown) => void): Refusal {
  const code = error instanceof PgNotifyError ? error.code : undefined;
  if (code === ErrorCode.CLOSED) {
    return { status: 503, reason: 'the listener is stopped', headers: { 'Retry-After': '5' } };
  }
  if (code !== undefined && BAD_REQUEST.has(code)) {
    return { status: 400, reason: (error as Error).message, headers: {} };
  }
  report(error);
  return { status: 500, reason: 'cannot subscribe', headers: { 'Retry-After': '5' } };
}
