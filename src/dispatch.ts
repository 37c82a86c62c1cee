/**
 * Running user code: handler concurrency, ordering and error isolation, and the Router that
 * sends a channel's payloads to handlers per action (pgnotifpy's dispatcher).
 */
import { ErrorCode, PgNotifyError } from './errors.js';

/** The queue a {@link HandlerRunner} pulls from. */
export interface Source<N> {
  /** The next item, or undefined when there is none. */
  take(): N | undefined;
  /** Told the number of handler calls in flight whenever it changes (async handlers only). */
  busy?(inFlight: number): void;
}

/**
 * Runs a handler over items with bounded concurrency:
 * - 0: inline, as each item arrives; async handlers are not awaited before the next item.
 * - 1: one at a time, in arrival order; a synchronous handler costs no promise or closure.
 * - N: at most N in flight.
 * A throw or a rejection is passed to `fail` and never stops the runner.
 */
export class HandlerRunner<N> {
  // Declared in this order so that what every delivery reads shares one cache line.
  private readonly handler: (item: N) => unknown;
  readonly concurrency: number;
  /** Handler calls that returned a promise not yet settled. */
  inFlight = 0;
  private readonly source: Source<N>;
  private readonly fail: (error: unknown, item: N) => void;
  private idleWaiters: (() => void)[] = [];
  private readonly settle = (): void => {
    this.inFlight--;
    this.source.busy?.(this.inFlight);
    this.pump();
    if (this.inFlight === 0 && this.idleWaiters.length > 0) this.wakeIdle();
  };

  constructor(
    handler: (item: N) => unknown,
    concurrency: number,
    source: Source<N>,
    fail: (error: unknown, item: N) => void,
  ) {
    this.handler = handler;
    this.concurrency = concurrency;
    this.source = source;
    this.fail = fail;
  }

  /** Whether an item can run now rather than wait in the source. */
  canRunNow(): boolean {
    return this.concurrency === 0 || this.inFlight < this.concurrency;
  }

  /** Runs as many items from the source as the concurrency allows. */
  pump(): void {
    while (this.concurrency === 0 || this.inFlight < this.concurrency) {
      const item = this.source.take();
      if (item === undefined) return;
      this.run(item);
    }
  }

  /** Runs one item now. Callers check {@link canRunNow} first. */
  run(item: N): void {
    const handler = this.handler;
    let result: unknown;
    try {
      result = handler(item);
    } catch (error) {
      this.fail(error, item);
      return;
    }
    if (isThenable(result)) this.track(result, item);
  }

  /**
   * What {@link run} does after calling the handler, for a caller that called it itself: a
   * throw is reported, and a returned promise counts as in flight until it settles.
   */
  after(threw: boolean, result: unknown, item: N): void {
    if (threw) this.fail(result, item);
    else if (isThenable(result)) this.track(result, item);
  }

  private track(result: PromiseLike<unknown>, item: N): void {
    this.inFlight++;
    this.source.busy?.(this.inFlight);
    result.then(this.settle, (error: unknown) => {
      this.fail(error, item);
      this.settle();
    });
  }

  /** Resolves once no handler call is in flight. */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/**
 * A dispatcher maps a payload to `[action, data]`, or `undefined` when the payload is not
 * routable. The default reads `{ action, data }` objects.
 */
export type DispatchFunction<P = unknown, N = unknown> = (
  payload: P,
  notification: N,
) => readonly [action: string, data: unknown] | undefined;

/** A handler for one action: receives the dispatched data and the whole notification. */
export type ActionHandler<D = unknown, N = unknown> = (data: D, notification: N) => unknown;

/** Why a notification was not routed. */
export type UnroutedReason = 'rejected' | 'no-handler';

/** The default dispatcher: `{ action: string, data?: unknown }` → `[action, data]`. */
export function defaultDispatch(payload: unknown): readonly [string, unknown] | undefined {
  if (typeof payload !== 'object' || payload === null) return undefined;
  const action = (payload as { action?: unknown }).action;
  if (typeof action !== 'string') return undefined;
  return [action, (payload as { data?: unknown }).data];
}

const HANDLES = Symbol('pgnotify.handles');

/**
 * Marks a method as the handler of an action (TypeScript 5 standard decorators), for
 * {@link Router.register}: the Flask-like style of pgnotifpy.
 * @example
 * class Users {
 *   @handles('new_user') greet(data: User) { console.log('hi', data.name) }
 * }
 * listener.route('job').register(new Users())
 */
export function handles(action: string) {
  return (method: (...args: never[]) => unknown, context: ClassMethodDecoratorContext): void => {
    const metadata = context.metadata as Record<symbol, unknown> | undefined;
    if (metadata === undefined) {
      // Without Symbol.metadata (Node 20), record on the method itself.
      const marked = method as unknown as Record<symbol, string[] | undefined>;
      marked[HANDLES] = [...(marked[HANDLES] ?? []), action];
      return;
    }
    // A subclass's metadata inherits from its parent's: copy the parent's map rather than
    // adding to it, or a subclass's handlers would leak into the parent and its siblings.
    const map = Object.hasOwn(metadata, HANDLES)
      ? (metadata[HANDLES] as Map<string | symbol, string[]>)
      : new Map(metadata[HANDLES] as Map<string | symbol, string[]> | undefined);
    metadata[HANDLES] = map;
    map.set(context.name, [...(map.get(context.name) ?? []), action]);
  };
}

/**
 * Routes one channel's notifications to handlers per action. Many handlers may share an
 * action; they run in registration order, and one that throws does not stop the others.
 */
export class Router<P = unknown, N = unknown> {
  private readonly handlers = new Map<string, ActionHandler<never, N>[]>();

  /** @internal */
  constructor(
    private readonly dispatchFn: DispatchFunction<P, N>,
    private readonly unrouted: (reason: UnroutedReason, notification: N, error?: unknown) => void,
    private readonly fail: (error: unknown, notification: N, action: string) => void,
  ) {}

  /** Adds a handler for an action. Returns this router for chaining. */
  on<D = unknown>(action: string, handler: ActionHandler<D, N>): this {
    if (typeof action !== 'string') throw invalidArg('action', 'a string', action);
    if (typeof handler !== 'function') throw invalidArg('handler', 'a function', handler);
    const list = this.handlers.get(action) ?? [];
    this.handlers.set(action, [...list, handler as ActionHandler<never, N>]);
    return this;
  }

  /** Removes a handler (or every handler of the action when omitted). */
  off(action: string, handler?: ActionHandler<never, N>): this {
    if (handler === undefined) this.handlers.delete(action);
    else {
      const list = (this.handlers.get(action) ?? []).filter((h) => h !== handler);
      if (list.length === 0) this.handlers.delete(action);
      else this.handlers.set(action, list);
    }
    return this;
  }

  /** Registers every method of `instance` marked with {@link handles}, bound to it. */
  register(instance: object): this {
    // Without a native Symbol.metadata (Node 20), TypeScript and esbuild still pass
    // context.metadata and store it under Symbol.for('Symbol.metadata').
    const metadataKey = (Symbol as { metadata?: symbol }).metadata ?? Symbol.for('Symbol.metadata');
    const ctor = instance.constructor as unknown as Record<
      symbol,
      Record<symbol, unknown> | null | undefined
    >;
    const fromMetadata = (metadataKey === undefined ? undefined : ctor[metadataKey]?.[HANDLES]) as
      | Map<string | symbol, string[]>
      | undefined;
    if (fromMetadata !== undefined) {
      for (const [name, actions] of fromMetadata) {
        const method = (instance as Record<string | symbol, unknown>)[name];
        if (typeof method !== 'function') continue;
        for (const action of actions) this.on(action, method.bind(instance));
      }
      return this;
    }
    let proto = Object.getPrototypeOf(instance) as object | null;
    while (proto !== null && proto !== Object.prototype) {
      for (const name of Object.getOwnPropertyNames(proto)) {
        const method = (proto as Record<string, unknown>)[name];
        const actions =
          typeof method === 'function'
            ? (method as unknown as Record<symbol, string[]>)[HANDLES]
            : undefined;
        if (actions === undefined) continue;
        for (const action of actions)
          this.on(action, (method as (...a: unknown[]) => unknown).bind(instance));
      }
      proto = Object.getPrototypeOf(proto) as object | null;
    }
    return this;
  }

  /** The actions that have handlers. */
  actions(): string[] {
    return [...this.handlers.keys()];
  }

  /** @internal Routes one notification; resolves once every handler it ran has settled. */
  handle(payload: P, notification: N): Promise<void> | undefined {
    let routed: readonly [string, unknown] | undefined;
    try {
      routed = this.dispatchFn(payload, notification);
    } catch (error) {
      this.unrouted('rejected', notification, error);
      return undefined;
    }
    if (routed === undefined) {
      this.unrouted('rejected', notification);
      return undefined;
    }
    const [action, data] = routed;
    const list = this.handlers.get(action);
    if (list === undefined) {
      this.unrouted('no-handler', notification);
      return undefined;
    }
    let pending: Promise<unknown>[] | undefined;
    for (const handler of list) {
      try {
        const result = (handler as ActionHandler<unknown, N>)(data, notification);
        if (result instanceof Promise) {
          pending ??= [];
          pending.push(result.catch((error: unknown) => this.fail(error, notification, action)));
        }
      } catch (error) {
        this.fail(error, notification, action);
      }
    }
    return pending === undefined ? undefined : Promise.all(pending).then(() => undefined);
  }
}

function invalidArg(name: string, expected: string, got: unknown): PgNotifyError {
  return new PgNotifyError(
    ErrorCode.INVALID_OPTION,
    `${name}: expected ${expected}, got ${typeof got}`,
  );
}
