/**
 * Replacing a lost connection: attempts with exponential backoff and jitter, each one
 * abortable (stop() cuts a wait short), until one connects, an error no retry can cure
 * arrives, or `maxAttempts` is spent. What a connected client becomes (adopted, LISTENs
 * checked, the gap reported) is session.ts's business.
 */
import type pg from 'pg';
import { ErrorCode, PgNotifyError, plural, toError } from './errors.js';
import { connectionFailed, isRetryable } from './pg-client.js';
import type { ReconnectOptions } from './types.js';

/** What the reconnect loop needs from the session. */
export interface ReconnectSteps {
  /** Whether reconnecting goes on (false once stop(), or an event listener, changed the state). */
  active(): boolean;
  /** Reports an attempt about to be made after `delayMs` (the `reconnecting` event). */
  reconnecting(attempt: number, delayMs: number, cause: Error): void;
  /** One connection attempt. */
  connect(): Promise<pg.Client>;
  /** Reconnecting gave up with this error. */
  fail(error: PgNotifyError): void;
}

/** The backoff waits of one session; `cancel()` ends the current one at once. */
export class Backoff {
  #cancel: (() => void) | undefined;

  /** Waits `ms`; resolves false when cancelled. */
  wait(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#cancel = undefined;
        resolve(true);
      }, ms);
      this.#cancel = () => {
        clearTimeout(timer);
        this.#cancel = undefined;
        resolve(false);
      };
    });
  }

  /** Cuts the current wait short (it resolves false); nothing when none is running. */
  cancel(): void {
    this.#cancel?.();
  }
}

/**
 * Attempts until one connects: the first at once, then after {@link backoffDelay}. Resolves
 * with the connected client, or `undefined` when the session stopped reconnecting or the loop
 * gave up (after `steps.fail()`: a non-retryable error as it is, or "gave up reconnecting
 * after N attempts").
 */
export async function reconnect(
  policy: Required<ReconnectOptions>,
  cause: Error,
  steps: ReconnectSteps,
  backoff: Backoff,
): Promise<pg.Client | undefined> {
  let lastError = cause;
  for (let attempt = 1; ; attempt++) {
    const delayMs = attempt === 1 ? 0 : backoffDelay(attempt, policy.minDelayMs, policy.maxDelayMs);
    // A 'state' or 'reconnecting' listener may have called stop().
    if (!steps.active()) return undefined;
    steps.reconnecting(attempt, delayMs, lastError);
    if (!steps.active()) return undefined;
    if (delayMs > 0 && !(await backoff.wait(delayMs))) return undefined;
    if (!steps.active()) return undefined;
    try {
      return await steps.connect();
    } catch (error) {
      lastError = toError(error);
      if (!steps.active()) return undefined;
      const retryable = isRetryable(error);
      if (!retryable || attempt >= policy.maxAttempts) {
        const failure = connectionFailed(error);
        steps.fail(
          retryable
            ? new PgNotifyError(
                ErrorCode.CONNECTION_FAILED,
                `gave up reconnecting after ${plural(attempt, 'attempt')}: ${failure.message}`,
                { cause: error, retryable: true },
              )
            : failure,
        );
        return undefined;
      }
    }
  }
}

/** Exponential backoff with equal jitter: attempt 2 waits ~minDelay, then doubling up to maxDelay. */
export function backoffDelay(
  attempt: number,
  minDelayMs: number,
  maxDelayMs: number,
  random = Math.random,
): number {
  // The exponent is capped so 0 * 2 ** n never becomes 0 * Infinity = NaN.
  const base = Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(64, Math.max(0, attempt - 2)));
  return Math.round(base / 2 + (random() * base) / 2);
}
