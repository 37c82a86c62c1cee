/**
 * The demo's counter: sections wait on it (a count with a deadline), never on a sleep.
 * `reached(n)` waits until the count is at least n.
 */
export class Tally {
  count = 0;
  private waiters: { n: number; wake: () => void }[] = [];

  add(): void {
    this.count++;
    if (this.waiters.length === 0) return;
    this.waiters = this.waiters.filter((w) => {
      if (this.count < w.n) return true;
      w.wake();
      return false;
    });
  }

  /** Resolves true once count ≥ n, false after `timeoutMs`; rejects when `signal` aborts. */
  reached(n: number, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    if (this.count >= n) return Promise.resolve(true);
    return new Promise((resolve, reject) => {
      const waiter = { n, wake: () => settle(true) };
      const onAbort = (): void => settle(undefined);
      const settle = (value: boolean | undefined): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.waiters = this.waiters.filter((w) => w !== waiter);
        if (value === undefined) reject(signal.reason);
        else resolve(value);
      };
      const timer = setTimeout(() => settle(false), timeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }
}
