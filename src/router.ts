/**
 * Routing one channel's payloads to handlers per action: a dispatcher maps each payload to
 * `[action, data]`, and every handler registered for the action runs. `listener.route()` is
 * built here on the public `subscribe()`; `@handles` marks methods as action handlers.
 */
import { asPgNotifyError, ErrorCode, PgNotifyError } from './errors.js';
import { functionOption } from './options.js';
import type { SubscriptionEnd } from './subscription.js';
import type {
  ActionHandler,
  ActionMap,
  DispatchFunction,
  Gap,
  Handler,
  Notification,
  Route,
  RouteOptions,
  SubscribeOptions,
  SubscriberId,
  UnroutedReason,
} from './types.js';

/**
 * @internal Routes one notification through a router; resolves once every handler it ran has settled.
 * Internal: how `route()` (and tests) drive a Router, which shows no such method.
 */
export let routeNotification: <P, N>(
  router: Router<P, N>,
  payload: P,
  notification: N,
) => Promise<void> | undefined;

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
 * {@link Router.register}: handlers declared as the methods of a class.
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
 * `A` maps each action to its data type; the open map (default) takes any action.
 */
export class Router<P = unknown, N = unknown, A extends ActionMap = ActionMap> {
  readonly #handlers = new Map<string, ActionHandler<never, N>[]>();
  readonly #dispatch: DispatchFunction<P, N>;
  readonly #unrouted: (reason: UnroutedReason, notification: N, error?: unknown) => void;
  readonly #fail: (error: unknown, notification: N, action: string) => void;

  static {
    routeNotification = (router, payload, notification) => router.#handle(payload, notification);
  }

  /** @internal Routers are made by `listener.route()`. */
  constructor(
    dispatch: DispatchFunction<P, N>,
    unrouted: (reason: UnroutedReason, notification: N, error?: unknown) => void,
    fail: (error: unknown, notification: N, action: string) => void,
  ) {
    this.#dispatch = dispatch;
    this.#unrouted = unrouted;
    this.#fail = fail;
  }

  /**
   * Adds a handler for an action; its data is typed by the route's actions. Returns this
   * router for chaining.
   * @example
   * jobs.on('resize', (data) => resize(data.url)).on('delete', (data) => remove(data.id))
   */
  on<K extends keyof A & string>(action: K, handler: ActionHandler<A[K], N>): this;
  /**
   * On a route with open actions (an untyped payload), names the data type of one action.
   * @example
   * jobs.on<User>('new_user', (user) => greet(user.name))
   */
  on<D>(action: string extends keyof A ? string : never, handler: ActionHandler<D, N>): this;
  on(action: string, handler: ActionHandler<never, N>): this {
    if (typeof action !== 'string') throw invalidArg('action', 'a string', action);
    if (typeof handler !== 'function') throw invalidArg('handler', 'a function', handler);
    const list = this.#handlers.get(action) ?? [];
    this.#handlers.set(action, [...list, handler as ActionHandler<never, N>]);
    return this;
  }

  /** Removes a handler (or every handler of the action when omitted). */
  off(action: string, handler?: ActionHandler<never, N>): this {
    if (handler === undefined) this.#handlers.delete(action);
    else {
      const list = (this.#handlers.get(action) ?? []).filter((h) => h !== handler);
      if (list.length === 0) this.#handlers.delete(action);
      else this.#handlers.set(action, list);
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
    return [...this.#handlers.keys()];
  }

  /** Routes one notification; resolves once every handler it ran has settled. */
  #handle(payload: P, notification: N): Promise<void> | undefined {
    let routed: readonly [string, unknown] | undefined;
    try {
      routed = this.#dispatch(payload, notification);
    } catch (error) {
      this.#unrouted('rejected', notification, error);
      return undefined;
    }
    if (routed === undefined) {
      this.#unrouted('rejected', notification);
      return undefined;
    }
    const [action, data] = routed;
    const list = this.#handlers.get(action);
    if (list === undefined) {
      this.#unrouted('no-handler', notification);
      return undefined;
    }
    let pending: Promise<unknown>[] | undefined;
    for (const handler of list) {
      try {
        const result = (handler as ActionHandler<unknown, N>)(data, notification);
        if (result instanceof Promise) {
          pending ??= [];
          pending.push(result.catch((error: unknown) => this.#fail(error, notification, action)));
        }
      } catch (error) {
        this.#fail(error, notification, action);
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

/** @internal What `route()` needs of the listener. */
export interface RouteHost {
  subscribe(channel: string, handler: Handler, options: SubscribeOptions): Promise<SubscriptionEnd>;
  unsubscribe(id: SubscriberId): Promise<void>;
  generateId(): SubscriberId;
  /** Counts a notification that was not routed. */
  unrouted(): void;
  handlerFailed(error: unknown, id: SubscriberId, channel: string, what: string): void;
  reportError(error: PgNotifyError): void;
}

/**
 * @internal A router subscribed to `channel`: returns at once; `ready` resolves once the channel is
 * listened to, and `unsubscribe()` ends it.
 */
export function createRoute<P>(
  host: RouteHost,
  channel: string,
  options: RouteOptions<P, readonly [string, unknown]>,
): Route<P, ActionMap> {
  type N = Notification<P>;
  const dispatch = functionOption<DispatchFunction<P, N>>(
    'dispatch',
    options.dispatch,
    defaultDispatch as DispatchFunction<P, N>,
  );
  const onUnrouted = functionOption<RouteOptions<P>['onUnrouted']>(
    'onUnrouted',
    options.onUnrouted,
    undefined,
  );
  const onGap = functionOption<((gap: Gap) => unknown) | undefined>(
    'onGap',
    options.onGap,
    undefined,
  );
  const id = options.id ?? host.generateId();
  const router = new Router<P, N>(
    dispatch,
    (reason, notification, error) => {
      host.unrouted();
      if (onUnrouted === undefined) return;
      try {
        onUnrouted(reason, notification, error);
      } catch (hookError) {
        host.reportError(
          asPgNotifyError(hookError, ErrorCode.HANDLER_FAILED, 'onUnrouted threw', {
            channel,
            subscriberId: id,
          }),
        );
      }
    },
    (error, notification, action) =>
      host.handlerFailed(error, id, notification.channel, `action ${JSON.stringify(action)}`),
  ) as Route<P, ActionMap>;
  const ready = host
    .subscribe(channel, (n) => routeNotification(router, n.payload as P, n as N), {
      id,
      ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
      ...(onGap === undefined ? {} : { onGap }),
    })
    .then(() => undefined);
  ready.catch(() => undefined);
  const unsubscribe = (): Promise<void> => host.unsubscribe(id);
  Object.defineProperties(router, {
    ready: { value: ready },
    unsubscribe: { value: unsubscribe },
    close: { value: unsubscribe },
  });
  return router;
}
