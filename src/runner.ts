/**
 * Running user code: a handler over a queue with bounded concurrency, in arrival order, with
 * every throw and rejection isolated (reported, never stopping the runner).
 */

/** The queue a {@link HandlerRunner} pulls from. */
export interface Source<N> {
  /** The next item, or undefined when there is none. */
  take(): N | undefined;
}

/**
 * Runs a handler over items with bounded concurrency:
 * - 0: inline, as each item arrives; async handlers are not awaited before the next item.
 * - 1: one at a time, in arrival order; a synchronous handler costs no promise or closure.
 * - N: at most N in flight.
 * A throw or a rejection is passed to `fail` and never stops the runner.
 */
export class HandlerRunner<N> {
  readonly #handler: (item: N) => unknown;
  readonly #concurrency: number;
  readonly #source: Source<N>;
  readonly #fail: (error: unknown, item: N) => void;
  #inFlight = 0;
  #idleWaiters: (() => void)[] = [];

  constructor(
    handler: (item: N) => unknown,
    concurrency: number,
    source: Source<N>,
    fail: (error: unknown, item: N) => void,
  ) {
    this.#handler = handler;
    this.#concurrency = concurrency;
    this.#source = source;
    this.#fail = fail;
  }

  /** Handler calls that returned a promise not yet settled. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Whether an item can run now rather than wait in the source. */
  canRunNow(): boolean {
    return this.#concurrency === 0 || this.#inFlight < this.#concurrency;
  }

  /** Runs as many items from the source as the concurrency allows. */
  pump(): void {
    while (this.canRunNow()) {
      const item = this.#source.take();
      if (item === undefined) return;
      this.run(item);
    }
  }

  /** Runs one item now. Callers check {@link canRunNow} first. */
  run(item: N): void {
    const handler = this.#handler; // called as a plain function: no `this` leaks in
    let result: unknown;
    try {
      result = handler(item);
    } catch (error) {
      this.#fail(error, item);
      return;
    }
    if (isThenable(result)) this.#track(result, item);
  }

  #track(result: PromiseLike<unknown>, item: N): void {
    this.#inFlight++;
    result.then(
      () => this.#settle(),
      (error: unknown) => {
        this.#fail(error, item);
        this.#settle();
      },
    );
  }

  #settle(): void {
    this.#inFlight--;
    this.pump();
    if (this.#inFlight === 0 && this.#idleWaiters.length > 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  /** Resolves once no handler call is in flight. */
  idle(): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }
}

/** Whether `value` is a promise or promise-like (what a handler's result is awaited as). @internal */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
