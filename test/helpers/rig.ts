/**
 * The listener rig shared by the real-server tests (listener, consumption, resilience,
 * overflow): a listener on the test database whose errors are collected, a collector of
 * delivered notifications with waits on counts, and a barrier that proves everything
 * committed before it has been read. One copy instead of one per test file.
 */
import assert from 'node:assert/strict';
import {
  createListener,
  type Listener,
  type ListenerOptions,
  type Notification,
  type PgNotifyError,
} from '../../src/index.js';
import { databaseUrl, uniqueChannel, waitFor } from './db.js';

const DEADLINE_MS = 10_000;

/** A listener with its collected `onError` reports. */
export interface Rig {
  readonly listener: Listener;
  readonly errors: PgNotifyError[];
}

/**
 * A listener on the test database (unless `options.connection` says otherwise) whose errors
 * go to `errors`. Nothing connects until `start()`; the caller stops it (`await using`, or a
 * deferred `stop()`).
 */
export function listenerRig(options: Omit<ListenerOptions, 'onError'> = {}): Rig {
  const errors: PgNotifyError[] = [];
  const listener = createListener({
    connection: databaseUrl(),
    ...options,
    onError: (error) => {
      errors.push(error as PgNotifyError);
    },
  });
  return { listener, errors };
}

/** Notifications handed to `handler`, with waits on what arrived. */
export interface Collector<T = unknown> {
  readonly got: Notification<T>[];
  readonly handler: (n: Notification<T>) => void;
  /** Resolves once at least `count` notifications arrived (rejects at the deadline). */
  atLeast(count: number, what?: string): Promise<void>;
  /** Resolves once a notification with this payload arrived (rejects at the deadline). */
  wait(payload: unknown, timeoutMs?: number): Promise<void>;
  raws(): string[];
  payloads(): unknown[];
}

/** A new {@link Collector}. */
export function collect<T = unknown>(): Collector<T> {
  const got: Notification<T>[] = [];
  return {
    got,
    handler: (n) => {
      got.push(n);
    },
    async atLeast(count, what = `${count} notification(s)`) {
      await waitFor(() => got.length >= count, { timeoutMs: DEADLINE_MS, message: what });
    },
    async wait(payload, timeoutMs = DEADLINE_MS) {
      await waitFor(() => got.some((n) => n.payload === payload), {
        timeoutMs,
        message: `delivery of ${JSON.stringify(payload)}`,
      });
    },
    raws: () => got.map((n) => n.raw),
    payloads: () => got.map((n) => n.payload),
  };
}

/**
 * Waits until every notification committed before the call has been read by `listener`:
 * sends one on a fresh sentinel channel (with `send`) and waits for it. Notifications from
 * one session arrive in commit order, so nothing sent earlier can still be on its way.
 */
export async function barrier(
  listener: Listener,
  send: (channel: string, payload: string) => Promise<void>,
): Promise<void> {
  const channel = uniqueChannel('barrier');
  const feed = await listener.subscribe(channel, { decode: 'text' });
  try {
    await send(channel, 'sentinel');
    const n = await feed.next({ timeoutMs: DEADLINE_MS });
    assert.equal(n?.raw, 'sentinel', 'the barrier notification arrived');
  } finally {
    await feed.unsubscribe();
  }
}
