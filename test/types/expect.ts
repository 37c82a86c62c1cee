/**
 * The helpers of the compile-time type tests in test/types/ (checked by `npm run typecheck`,
 * never run):
 *
 *   expectType<Notification<Order>>()(n);        compiles only when n's type is exactly that
 *   assertType<Equal<A, B>>();                   compiles only when A and B are the same type
 *   // @ts-expect-error <why it must not compile>
 *   listener.subscribe('unknown-channel');       the check fails when this line compiles
 *
 * Put checks in exported functions that are never called, so no file connects to anything.
 */

/** True when A and B are the same type (not merely mutually assignable). */
export type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

/**
 * `expectType<T>()(value)` compiles only when the type of `value` is exactly T: a mismatch
 * leaves a required argument missing.
 */
export function expectType<T>() {
  return <V>(
    _value: V,
    ..._mismatch: Equal<V, T> extends true ? [] : ['type mismatch']
  ): void => {};
}

/** Compiles only when the condition type is `true`. */
export function assertType<_Condition extends true>(): void {}

/** Never called: the helpers must reject mismatches, or every check that uses them is vacuous. */
export function helperChecks(): void {
  // biome-ignore lint/suspicious/noExplicitAny: checking that the helpers tell any from unknown
  type Any = any;
  assertType<Equal<{ id: number }, { id: number }>>();
  assertType<Equal<Equal<{ id: number }, { id: number; extra: string }>, false>>();
  assertType<Equal<Equal<unknown, Any>, false>>();
  assertType<Equal<Equal<string | number, string>, false>>();
  // @ts-expect-error the helper refuses a wider type
  expectType<string>()('x' as string | number);
  // @ts-expect-error the helper refuses a narrower type
  expectType<string | number>()('x' as string);
  // @ts-expect-error the helper refuses any where unknown is expected
  expectType<unknown>()(undefined as Any);
  // @ts-expect-error assertType refuses false
  assertType<Equal<string, number>>();
}
