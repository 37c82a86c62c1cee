/**
 * Compile-time checks of the listener's public types: `npm run typecheck` fails on a wrong
 * type, and on an `@ts-expect-error` with nothing to expect. Never run (not a `*.test.ts`
 * file); the checks live in functions that are never called.
 */
import {
  createListener,
  type DiagnosticsChannel,
  type DiagnosticsChannelName,
  type DiagnosticsMessages,
  ErrorCode,
  type Listener,
  type ListenerState,
  type Notification,
  type OncePromise,
  type PgNotifyError,
  type Route,
  type Schema,
  type Subscription,
} from '../../src/index.js';
import { assertType, type Equal, expectType } from './expect.js';

type Order = { id: number };
type Channels = { orders: Order; logs: string };

/** Never called: type positions only. */
export function typedListenerChecks(listener: Listener<Channels>): void {
  // One channel: the payload has that channel's type.
  void listener.subscribe('orders', (n) => {
    expectType<Order>()(n.payload);
    expectType<Notification<Order>>()(n);
    expectType<string>()(n.channel);
    expectType<string>()(n.raw);
    expectType<number>()(n.pid);
  });
  void listener.subscribe('logs', (n) => {
    expectType<string>()(n.payload);
  });

  // Several channels: the union of their payloads.
  void listener.subscribe(['orders', 'logs'], (n) => {
    expectType<Order | string>()(n.payload);
  });

  // Without a handler: a typed subscription.
  expectType<Promise<Subscription<Order>>>()(listener.subscribe('orders'));
  expectType<Promise<Subscription<Order | string>>>()(
    listener.subscribe(['orders', 'logs'], { id: 'feed' }),
  );

  // once(): the notification of that channel; the filter sees the same type.
  expectType<OncePromise<string>>()(listener.once('logs'));
  void listener.once('orders', {
    timeoutMs: 10,
    filter: (n) => {
      expectType<Order>()(n.payload);
      return n.payload.id === 7;
    },
  });

  // route(): dispatch sees the payload, handlers see the typed notification; the data type
  // comes from what the dispatcher returns (a plain array: any action, `as const`: these).
  const route = listener.route('orders', {
    dispatch: (payload, n) => {
      expectType<Order>()(payload);
      expectType<Notification<Order>>()(n);
      return ['created', payload.id];
    },
  });
  expectType<Route<Order, { [action: string]: number }>>()(route);
  route.on('created', (data, n) => {
    expectType<number>()(data);
    expectType<Notification<Order>>()(n);
  });
  const exact = listener.route('orders', {
    dispatch: (payload) => ['created', payload.id] as const,
  });
  expectType<Route<Order, { created: number }>>()(exact);
  // @ts-expect-error an action the dispatcher never returns
  exact.on('anything', () => {});
  // @ts-expect-error naming the data type is for open routes only
  exact.on<string>('created', () => {});

  // A dispatcher that returns any string action leaves the route open.
  const open = listener.route('logs', {
    dispatch: (text): readonly [string, string] => [text.slice(0, 3), text],
  });
  open.on('anything', (data) => expectType<string>()(data));

  // @ts-expect-error a channel that is not in the map
  void listener.subscribe('unknown-channel', () => {});
  // @ts-expect-error a channel that is not in the map, in a list
  void listener.subscribe(['orders', 'unknown-channel']);
  // @ts-expect-error a channel that is not in the map
  void listener.once('unknown-channel');
  // @ts-expect-error a channel that is not in the map
  void listener.route('unknown-channel');

  // @ts-expect-error a handler written for another payload type
  void listener.subscribe('orders', (n: Notification<string>) => n.payload.toUpperCase());
  // @ts-expect-error a handler that reads a field the payload does not have
  void listener.subscribe('orders', (n) => n.payload.missing);
  // @ts-expect-error the logs payload is a string, not an Order
  void listener.subscribe('logs', (n: Notification<Order>) => n.payload.id);
}

/** Never called: an untyped listener takes any channel name, with payload unknown. */
export function untypedListenerChecks(): void {
  const listener = createListener();
  void listener.subscribe('any-channel-at-all', (n) => {
    expectType<unknown>()(n.payload);
  });
  void listener.subscribe(['a', 'b', `dynamic_${Date.now()}`], (n) => {
    expectType<unknown>()(n.payload);
  });
  expectType<OncePromise<unknown>>()(listener.once('whatever'));
  expectType<Route<unknown>>()(listener.route('jobs'));
}

/** Never called: onError receives a PgNotifyError, so `error.code` is the union of codes. */
export function onErrorChecks(): void {
  createListener({
    onError: (error) => {
      expectType<PgNotifyError>()(error);
      expectType<ErrorCode>()(error.code);
      if (error.code === ErrorCode.HANDLER_FAILED) void error.subscriberId;
      // @ts-expect-error not one of the codes
      if (error.code === 'PGNOTIFY_NO_SUCH_CODE') return;
    },
  });
  // A handler written for any Error still fits.
  createListener({ onError: (error: Error) => void error.message });
  // @ts-expect-error a handler that needs more than a PgNotifyError
  createListener({ onError: (error: PgNotifyError & { extra: string }) => void error.extra });
}

/** Never called: the factory's type parameter flows into options. */
export function optionChecks(orderSchema: Schema<Order>, textSchema: Schema<string>): void {
  expectType<Listener<Channels>>()(createListener<Channels>({ schemas: { orders: orderSchema } }));
  // @ts-expect-error a schema whose output is not the channel's payload type
  createListener<Channels>({ schemas: { orders: textSchema } });
  // @ts-expect-error a schema for a channel that is not in the map
  createListener<Channels>({ schemas: { unknown: orderSchema } });
}

/** Never called: every DiagnosticsChannel name has a typed message, and only those. */
export function diagnosticsChecks(): void {
  assertType<
    Equal<(typeof DiagnosticsChannel)[keyof typeof DiagnosticsChannel], DiagnosticsChannelName>
  >();
  expectType<ListenerState>()(({} as DiagnosticsMessages[typeof DiagnosticsChannel.STATE]).state);
}
