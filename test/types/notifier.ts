/**
 * Compile-time checks of the notifier's types, compiled by `npm run typecheck` (tsconfig.json
 * includes test/). A wrong type fails the type check, and so does an `@ts-expect-error` with
 * nothing to expect. Nothing here runs: the checks sit in functions that are never called.
 */
import type pg from 'pg';
import {
  createNotifier,
  type ErrorCode,
  type Notifier,
  notify,
  type PgNotifyError,
} from '../../src/index.js';

/** True when A and B are the same type (not merely mutually assignable). */
type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

/** Compiles only when the condition type is `true`. */
function assertType<_Condition extends true>(): void {}

type Order = { id: number; total: number };
type Channels = { orders: Order; audit: string; ping: undefined; maybe: Order | undefined };

/** Never called: type positions only. */
export async function typedNotifierChecks(): Promise<void> {
  const notifier = createNotifier<Channels>({ connection: 'postgres://localhost/app' });
  assertType<Equal<typeof notifier, Notifier<Channels>>>();

  await notifier.notify('orders', { id: 1, total: 9.5 });
  await notifier.notify('audit', 'text');
  // A channel whose type admits undefined may omit its payload; the others may not.
  await notifier.notify('ping');
  await notifier.notify('maybe');
  await notifier.notify('maybe', { id: 2, total: 1 });
  assertType<Equal<ReturnType<typeof notifier.notify>, Promise<void>>>();

  // @ts-expect-error a misspelt channel
  await notifier.notify('order', { id: 1, total: 1 });
  // @ts-expect-error a payload of the wrong shape
  await notifier.notify('orders', { id: '1', total: 1 });
  // @ts-expect-error another channel's payload type
  await notifier.notify('audit', { id: 1, total: 1 });
  // @ts-expect-error a required payload left out
  await notifier.notify('orders');

  await notifier.notifyMany('orders', [
    { id: 1, total: 1 },
    { id: 2, total: 2 },
  ]);
  await notifier.notifyMany('audit', ['a', 'b']);
  // @ts-expect-error a misspelt channel
  await notifier.notifyMany('audits', ['a']);
  // @ts-expect-error one payload of the wrong type
  await notifier.notifyMany('audit', ['a', 2]);

  // The stop channel is not a data channel of the map.
  await notifier.notifyStop('shutdown');

  // Durable: the third argument, with the same channel map.
  await notifier.notify('orders', { id: 1, total: 1 }, { durable: true });
  await notifier.notify('audit', 'text', { durable: false });
  await notifier.notify('audit', 'text', {});
  await notifier.notify('ping', undefined, { durable: true });
  await notifier.notifyMany('audit', ['a', 'b'], { durable: true });
  // @ts-expect-error durable is a boolean
  await notifier.notify('audit', 'text', { durable: 'yes' });
  // @ts-expect-error the notifier's schema is a notifier option, not a per-call one
  await notifier.notify('audit', 'text', { durable: true, schema: 'app' });
  // @ts-expect-error a misspelt channel stays an error with options
  await notifier.notify('audits', 'text', { durable: true });
  // @ts-expect-error the payload type still holds with options
  await notifier.notify('orders', 'text', { durable: true });
  // @ts-expect-error options are no payload: a required payload cannot be skipped
  await notifier.notify('orders', { durable: true });
  // @ts-expect-error durable is a boolean in notifyMany too
  await notifier.notifyMany('audit', ['a'], { durable: 1 });
  createNotifier<Channels>({ schema: 'app_events' });
}

/** Never called: the standalone notify typed by the same map. */
export async function typedStandaloneChecks(client: pg.PoolClient, pool: pg.Pool): Promise<void> {
  await notify<Channels>(client, 'orders', { id: 1, total: 1 });
  await notify<Channels>(pool, 'audit', 'text');
  await notify<Channels>(client, 'ping');
  // @ts-expect-error a misspelt channel
  await notify<Channels>(client, 'order', { id: 1, total: 1 });
  // @ts-expect-error a payload of the wrong shape
  await notify<Channels>(client, 'orders', { id: 1 });
  // @ts-expect-error another channel's payload type
  await notify<Channels>(client, 'orders', 'text');
  // @ts-expect-error a required payload left out
  await notify<Channels>(client, 'audit');

  // Durable inside the caller's transaction, with an optional schema.
  await notify<Channels>(client, 'orders', { id: 1, total: 1 }, { durable: true });
  await notify<Channels>(client, 'audit', 'text', { durable: true, schema: 'app_events' });
  await notify<Channels>(client, 'ping', undefined, { durable: true });
  await notify(client, 'anything', { any: 1 }, { durable: true });
  // @ts-expect-error durable is a boolean
  await notify<Channels>(client, 'audit', 'text', { durable: 'yes' });
  // @ts-expect-error the schema is a name
  await notify<Channels>(client, 'audit', 'text', { durable: true, schema: 1 });
  // @ts-expect-error the payload type still holds with options
  await notify<Channels>(client, 'orders', 'text', { durable: true });
}

/** Never called: without a map, any channel name and any payload compile, as before. */
export async function untypedChecks(client: pg.Client, name: string): Promise<void> {
  const notifier = createNotifier();
  assertType<Equal<typeof notifier, Notifier>>();
  await notifier.notify(name, { anything: [1, 'two'] });
  await notifier.notify(name, 'text');
  await notifier.notify(name);
  await notifier.notifyMany(name, [1, 'two', { three: 3 }, undefined]);
  await notify(client, name, new Date());
  await notify(client, name);
  // @ts-expect-error the channel is still a string
  await notifier.notify(42, 'x');
  // @ts-expect-error the payloads of notifyMany are still an array
  await notifier.notifyMany(name, 'x');
}

/** Never called: onError receives a PgNotifyError, so `error.code` is the union of codes. */
export function onErrorChecks(): void {
  createNotifier({
    onError: (error) => {
      assertType<Equal<typeof error, PgNotifyError>>();
      assertType<Equal<typeof error.code, ErrorCode>>();
      const code: ErrorCode = error.code;
      const sqlState: string | undefined = error.sqlState;
      void [code, sqlState];
    },
  });
  // A handler written for any Error still fits.
  createNotifier({ onError: (error: Error) => void error.message });
}
