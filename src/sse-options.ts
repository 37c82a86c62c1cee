/**
 * The bridge's options in one typed place: each with its default and unit, validated once by
 * `createSseHandler` with "expected X, got Y" messages (`PGNOTIFY_INVALID_OPTION`).
 */
import { describe, ErrorCode, PgNotifyError } from './errors.js';
import { DEFAULT_SCHEMA, journalNames } from './journal-sql.js';
import type { ClientLimits } from './sse-client.js';
import type { AdmissionConfig, SseAuthorize } from './sse-request.js';

/** Options of {@link createSseHandler}. Every field is optional; with none, nothing is allowed. */
export interface SseOptions {
  /**
   * Channels clients may ask for: a list, or a predicate. Default: none, unless `authorize`
   * is set (then `authorize` alone decides). With both, a channel must pass both.
   */
  channels?: readonly string[] | ((channel: string) => boolean);
  /**
   * Decides per request and channel, before anything is streamed: `true` allows; `false` is
   * 403; `{ status, reason }` answers that 4xx status (401 adds `WWW-Authenticate: Bearer`)
   * with `reason` as the body. A throw is reported to `onError` and answered 500.
   * Default: none (the `channels` allow-list alone decides).
   */
  authorize?: SseAuthorize;
  /**
   * Which channels are durable (`true`: all): a client gets `id:` cursors on them and resumes
   * from `Last-Event-ID` with exactly what it missed. Default `false`. Until the listener has
   * durable subscriptions, durable channels are served like plain ones.
   */
  durable?: boolean | readonly string[];
  /**
   * The schema of the journal that durable channels are read from (where `installSchema({ schema })`
   * or `pgnotify setup --schema` put it): every durable stream's subscription and starting cursor
   * use it. Unused without durable channels. Default `'pgnotify'`.
   */
  schema?: string;
  /** Interval of comment heartbeats (`:`), which keep proxies from closing idle streams. Default 15 000 ms. */
  heartbeatMs?: number;
  /** The `retry:` sent to clients: how long EventSource waits before reconnecting. Default 2 000 ms. */
  retryMs?: number;
  /** Channels one request may ask for (`?channel=` repeated); more is a 400. Default 32. */
  maxChannelsPerRequest?: number;
  /** Open streams this handler serves; past it a request gets 503 with `Retry-After`. Default 10 000. */
  maxClients?: number;
  /**
   * Events one client may have not read yet; past it the stream ends with `event: end`
   * (`reason: 'slow-client'`). Default 1 000.
   */
  maxQueuedEvents?: number;
  /** Bytes one client may have not read yet (Node's buffer, not the kernel's); as above. Default 1 MiB. */
  maxQueuedBytes?: number;
  /**
   * Durable streams are paced instead: once a client has half of `maxQueuedEvents` or
   * `maxQueuedBytes` unread, its stream stops reading the journal until the client has read
   * that (a replay of any size reaches a client that keeps reading). Such a stream ends with
   * `reason: 'slow-client'` only when its client takes none of it for `stallTimeoutMs`.
   * Default 30 000 ms.
   */
  stallTimeoutMs?: number;
  /**
   * Origins allowed to read the stream cross-origin (exact `scheme://host[:port]`, or `'*'`).
   * Default: CORS off (no `Access-Control-*` header: browsers allow same-origin only).
   */
  cors?: readonly string[];
  /**
   * The path served (node:http form: other paths get 404, or `next()` when given). Default:
   * every path it is handed (the framework routes).
   */
  path?: string;
  /**
   * Receives errors no request can report (a throwing `authorize`, a stream's subscription
   * that failed: the stream ends with `reason: 'error'`). Default: a stderr line.
   */
  onError?: (error: Error) => void;
}

/** The options with their defaults applied. */
export interface ResolvedSseOptions {
  readonly heartbeatMs: number;
  readonly retryMs: number;
  readonly maxClients: number;
  readonly limits: ClientLimits;
  readonly config: AdmissionConfig;
  readonly path: string | undefined;
  readonly durable: boolean | readonly string[];
  /** The journal schema of durable streams. */
  readonly schema: string;
  readonly onError: (error: Error) => void;
}

/** Validates `options` and applies the defaults; throws `PGNOTIFY_INVALID_OPTION`. */
export function resolveSseOptions(options: SseOptions): ResolvedSseOptions {
  const heartbeatMs = positive('heartbeatMs', options.heartbeatMs, 15_000);
  const retryMs = positive('retryMs', options.retryMs, 2000);
  const maxClients = positive('maxClients', options.maxClients, 10_000);
  const limits = {
    retryMs,
    maxQueuedEvents: positive('maxQueuedEvents', options.maxQueuedEvents, 1000),
    maxQueuedBytes: positive('maxQueuedBytes', options.maxQueuedBytes, 1024 * 1024),
    stallTimeoutMs: positive('stallTimeoutMs', options.stallTimeoutMs, 30_000),
  };
  const { channels, authorize, cors, path, durable = false } = options;
  check(
    channels === undefined || typeof channels === 'function' || isStringList(channels),
    'channels',
    'a list of names or a function',
    channels,
  );
  check(
    authorize === undefined || typeof authorize === 'function',
    'authorize',
    'a function',
    authorize,
  );
  check(cors === undefined || isStringList(cors), 'cors', 'a list of origins', cors);
  check(
    path === undefined || (typeof path === 'string' && path.startsWith('/')),
    'path',
    "a path starting with '/'",
    path,
  );
  check(
    typeof durable === 'boolean' || isStringList(durable),
    'durable',
    'a boolean or a list of names',
    durable,
  );
  const schema = schemaOption(options.schema);
  check(
    options.onError === undefined || typeof options.onError === 'function',
    'onError',
    'a function',
    options.onError,
  );
  const onError =
    options.onError ?? ((error: Error) => process.stderr.write(`pgnotify sse: ${error.message}\n`));
  const config = {
    channels,
    authorize,
    cors,
    maxChannelsPerRequest: positive('maxChannelsPerRequest', options.maxChannelsPerRequest, 32),
  };
  return { heartbeatMs, retryMs, maxClients, limits, config, path, durable, schema, onError };
}

/** A journal schema name PostgreSQL can hold (as `installSchema` takes it), or the default. */
function schemaOption(value: unknown): string {
  if (value === undefined) return DEFAULT_SCHEMA;
  try {
    if (typeof value === 'string') return journalNames(value).schema;
  } catch {
    // journalNames refuses it: reported below in this module's "option X" form.
  }
  throw new PgNotifyError(
    ErrorCode.INVALID_OPTION,
    `option schema: expected a non-empty name of at most 63 UTF-8 bytes without NUL, got ${describe(value)}`,
  );
}

function positive(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new PgNotifyError(
      ErrorCode.INVALID_OPTION,
      `option ${name}: expected an integer >= 1, got ${describe(value)}`,
    );
  }
  return value;
}

function check(ok: boolean, name: string, expected: string, value: unknown): void {
  if (!ok) {
    throw new PgNotifyError(
      ErrorCode.INVALID_OPTION,
      `option ${name}: expected ${expected}, got ${describe(value)}`,
    );
  }
}

const isStringList = (v: unknown): v is readonly string[] =>
  Array.isArray(v) && v.every((item) => typeof item === 'string');
