/**
 * `listener.once()`: a one-shot wait built on the public `subscribe()`, with a timeout, a
 * filter and an AbortSignal. The subscription is made before the promise is returned, so
 * "arm, trigger, await" misses nothing once `ready` has resolved.
 */
import { abortedError, ErrorCode, PgNotifyError, toError } from './errors.js';
import { timeoutOption } from './options.js';
import type { SubscriptionEnd } from './subscription.js';
import type {
  Handler,
  Notification,
  OnceOptions,
  OncePromise,
  SubscribeOptions,
  SubscriberId,
} from './types.js';

/** What `once()` needs of the listener. */
export interface OnceHost {
  subscribe(channel: string, handler: Handler, options: SubscribeOptions): Promise<SubscriptionEnd>;
  unsubscribe(id: SubscriberId): Promise<void>;
  generateId(): SubscriberId;
}

/** The first notification on `channel` that passes `options.filter`. */
export function once<T>(host: OnceHost, channel: string, options: OnceOptions<T>): OncePromise<T> {
  const timeoutMs = timeoutOption('timeoutMs', options.timeoutMs);
  const { filter, signal } = options;
  if (signal?.aborted) {
    const ready = Promise.reject(abortedError(signal));
    ready.catch(() => undefined);
    return Object.assign(Promise.reject(abortedError(signal)), { ready });
  }
  let ready: Promise<void> = Promise.resolve();
  const result = new Promise<Notification<T>>((resolve, reject) => {
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const id = host.generateId();
    const finish = (error: Error | undefined, notification?: Notification<T>): void => {
      if (done) return;
      done = true;
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      void host.unsubscribe(id).catch(() => undefined);
      if (error !== undefined) reject(error);
      else resolve(notification as Notification<T>);
    };
    const onAbort = (): void => finish(abortedError(signal));
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timeoutMs !== undefined) {
      timer = setTimeout(
        () =>
          finish(
            new PgNotifyError(
              ErrorCode.TIMEOUT,
              `no notification on ${JSON.stringify(channel)} within ${timeoutMs} ms`,
              { channel },
            ),
          ),
        timeoutMs,
      );
    }
    ready = host
      .subscribe(
        channel,
        (notification) => {
          if (done) return;
          try {
            if (filter !== undefined && !filter(notification as Notification<T>)) return;
          } catch (error) {
            finish(toError(error));
            return;
          }
          finish(undefined, notification as Notification<T>);
        },
        { id, concurrency: 0 },
      )
      .then(
        (subscription) => {
          // Ended by the listener (stop(), or a failure for good) before a notification came.
          const ended = (error: Error | undefined): void =>
            finish(
              error ??
                new PgNotifyError(
                  ErrorCode.CLOSED,
                  `the listener stopped before a notification on ${JSON.stringify(channel)}`,
                  { channel },
                ),
            );
          subscription.afterEnd(ended);
        },
        (error: unknown) => {
          finish(toError(error));
          throw error;
        },
      );
  });
  // `ready` rejects like the wait itself; nobody has to await it.
  ready.catch(() => undefined);
  return Object.assign(result, { ready });
}
