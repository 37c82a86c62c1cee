/** Promise helpers for tests that step asynchronous code by hand (no clocks, no sleeps). */

/** A promise with its resolve and reject handed out. */
export interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

/** A new {@link Deferred}. */
export function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every queued promise callback run (not a sleep: nothing here waits on time). */
export function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
